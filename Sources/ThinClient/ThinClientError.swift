/// An error from a ``ThinClient``: a local failure or an error code reported by kpclientd.
///
/// Errors carry a stable ``Code-swift.struct``; daemon errors also carry the raw
/// ``daemonErrorCode`` and the ``ErrorNamespace`` it was read in. Messages never contain
/// capabilities, session tokens or other secrets.
public struct ThinClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate enum Backing: String, Hashable, Sendable {
            // Local failures.
            case invalidConfiguration = "invalid_configuration"
            case invalidArgument = "invalid_argument"
            case notConnected = "not_connected"
            case connectionLost = "connection_lost"
            case closed
            case timeout
            case cancelled
            case tooManyPendingRequests = "too_many_pending_requests"
            case frameTooLarge = "frame_too_large"
            case protocolViolation = "protocol_violation"
            case handshakeFailed = "handshake_failed"
            case daemonOffline = "daemon_offline"
            case messageSendFailed = "message_send_failed"
            // Thin-client namespace (kpclientd `ThinClientErr*`).
            case daemonConnectionLost = "thin.connection_lost"
            case daemonTimeout = "thin.timeout"
            case invalidRequest = "thin.invalid_request"
            case internalError = "thin.internal_error"
            case maxRetries = "thin.max_retries"
            case invalidChannel = "thin.invalid_channel"
            case channelNotFound = "thin.channel_not_found"
            case permissionDenied = "thin.permission_denied"
            case invalidPayload = "thin.invalid_payload"
            case serviceUnavailable = "thin.service_unavailable"
            case duplicateCapability = "thin.duplicate_capability"
            case courierCacheCorruption = "thin.courier_cache_corruption"
            case courierPropagationError = "thin.courier_propagation_error"
            case invalidWriteCapability = "thin.invalid_write_capability"
            case invalidReadCapability = "thin.invalid_read_capability"
            case invalidResumeWriteChannelRequest = "thin.invalid_resume_write_channel_request"
            case invalidResumeReadChannelRequest = "thin.invalid_resume_read_channel_request"
            case impossibleHash = "thin.impossible_hash"
            case impossibleNewWriteCap = "thin.impossible_new_write_cap"
            case impossibleNewStatefulWriter = "thin.impossible_new_stateful_writer"
            case capabilityAlreadyInUse = "thin.capability_already_in_use"
            case mkemDecryptionFailed = "thin.mkem_decryption_failed"
            case bacapDecryptionFailed = "thin.bacap_decryption_failed"
            case startResendingCancelled = "thin.start_resending_cancelled"
            case invalidTombstoneSignature = "thin.invalid_tombstone_signature"
            case copyCommandFailed = "thin.copy_command_failed"
            case payloadTooLarge = "thin.payload_too_large"
            case voucherHashMismatch = "thin.voucher_hash_mismatch"
            case voucherSignatureInvalid = "thin.voucher_signature_invalid"
            case voucherSealOpenFailed = "thin.voucher_seal_open_failed"
            case courierInvalidEnvelope = "thin.courier_invalid_envelope"
            case courierReplicaEpochOutsideWindow = "thin.courier_replica_epoch_outside_window"
            case unknownDaemonError = "thin.unknown"
            // Replica namespace (pigeonhole `Replica*`).
            case boxIDNotFound = "replica.box_id_not_found"
            case invalidBoxID = "replica.invalid_box_id"
            case invalidSignature = "replica.invalid_signature"
            case databaseFailure = "replica.database_failure"
            case replicaInvalidPayload = "replica.invalid_payload"
            case storageFull = "replica.storage_full"
            case replicaInternalError = "replica.internal_error"
            case invalidEpoch = "replica.invalid_epoch"
            case replicationFailed = "replica.replication_failed"
            case boxAlreadyExists = "replica.box_already_exists"
            case tombstone = "replica.tombstone"
            case unknownReplicaError = "replica.unknown"
        }
        fileprivate let backing: Backing
        fileprivate init(_ backing: Backing) { self.backing = backing }

        /// The stable text form of the code, for example `"replica.box_already_exists"`.
        public var description: String { backing.rawValue }

        // MARK: Local failures

        /// The configuration (for example `thinclient.toml`) is invalid.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// An argument was rejected before anything was sent (for example a wrong byte length).
        public static let invalidArgument = Code(.invalidArgument)
        /// The client has no connection to kpclientd right now; retry later.
        public static let notConnected = Code(.notConnected)
        /// The connection to kpclientd was lost while the request was pending; retry later.
        public static let connectionLost = Code(.connectionLost)
        /// The client was closed.
        public static let closed = Code(.closed)
        /// No answer arrived in time.
        public static let timeout = Code(.timeout)
        /// The calling task was cancelled.
        public static let cancelled = Code(.cancelled)
        /// A bounded queue of the client is full; retry later.
        public static let tooManyPendingRequests = Code(.tooManyPendingRequests)
        /// A frame would exceed the 40 MiB protocol limit.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// kpclientd sent something that does not follow the protocol.
        public static let protocolViolation = Code(.protocolViolation)
        /// The connection handshake did not complete.
        public static let handshakeFailed = Code(.handshakeFailed)
        /// kpclientd reports that it is not connected to the mixnet.
        public static let daemonOffline = Code(.daemonOffline)
        /// kpclientd could not send a legacy message (`message_sent_event` carried an error).
        public static let messageSendFailed = Code(.messageSendFailed)

        // MARK: Thin-client namespace

        /// Daemon code 1: ConnectionLost.
        public static let daemonConnectionLost = Code(.daemonConnectionLost)
        /// Daemon code 2: Timeout.
        public static let daemonTimeout = Code(.daemonTimeout)
        /// Daemon code 3: InvalidRequest.
        public static let invalidRequest = Code(.invalidRequest)
        /// Daemon code 4: InternalError.
        public static let internalError = Code(.internalError)
        /// Daemon code 5: MaxRetries.
        public static let maxRetries = Code(.maxRetries)
        /// Daemon code 6: InvalidChannel (legacy).
        public static let invalidChannel = Code(.invalidChannel)
        /// Daemon code 7: ChannelNotFound (legacy).
        public static let channelNotFound = Code(.channelNotFound)
        /// Daemon code 8: PermissionDenied.
        public static let permissionDenied = Code(.permissionDenied)
        /// Daemon code 9: InvalidPayload.
        public static let invalidPayload = Code(.invalidPayload)
        /// Daemon code 10: ServiceUnavailable.
        public static let serviceUnavailable = Code(.serviceUnavailable)
        /// Daemon code 11: DuplicateCapability.
        public static let duplicateCapability = Code(.duplicateCapability)
        /// Daemon code 12: the courier's cache is corrupt.
        public static let courierCacheCorruption = Code(.courierCacheCorruption)
        /// Daemon code 13: the courier failed to propagate the query.
        public static let courierPropagationError = Code(.courierPropagationError)
        /// Daemon code 14: InvalidWriteCapability.
        public static let invalidWriteCapability = Code(.invalidWriteCapability)
        /// Daemon code 15: InvalidReadCapability.
        public static let invalidReadCapability = Code(.invalidReadCapability)
        /// Daemon code 16: InvalidResumeWriteChannelRequest (legacy).
        public static let invalidResumeWriteChannelRequest = Code(.invalidResumeWriteChannelRequest)
        /// Daemon code 17: InvalidResumeReadChannelRequest (legacy).
        public static let invalidResumeReadChannelRequest = Code(.invalidResumeReadChannelRequest)
        /// Daemon code 18: ImpossibleHash (legacy).
        public static let impossibleHash = Code(.impossibleHash)
        /// Daemon code 19: ImpossibleNewWriteCap (legacy).
        public static let impossibleNewWriteCap = Code(.impossibleNewWriteCap)
        /// Daemon code 20: ImpossibleNewStatefulWriter (legacy).
        public static let impossibleNewStatefulWriter = Code(.impossibleNewStatefulWriter)
        /// Daemon code 21: CapabilityAlreadyInUse (legacy).
        public static let capabilityAlreadyInUse = Code(.capabilityAlreadyInUse)
        /// Daemon code 22: MKEM decryption failed.
        public static let mkemDecryptionFailed = Code(.mkemDecryptionFailed)
        /// Daemon code 23: BACAP decryption failed.
        public static let bacapDecryptionFailed = Code(.bacapDecryptionFailed)
        /// Daemon code 24: the resending operation was cancelled.
        public static let startResendingCancelled = Code(.startResendingCancelled)
        /// Daemon code 25: a tombstone's signature is invalid.
        public static let invalidTombstoneSignature = Code(.invalidTombstoneSignature)
        /// Daemon code 26: a copy command failed; see ``ThinClientError/replicaErrorCode`` and
        /// ``ThinClientError/failedEnvelopeIndex``.
        public static let copyCommandFailed = Code(.copyCommandFailed)
        /// Daemon code 27: PayloadTooLarge (defined, no longer emitted).
        public static let payloadTooLarge = Code(.payloadTooLarge)
        /// Daemon code 28: voucher hash mismatch.
        public static let voucherHashMismatch = Code(.voucherHashMismatch)
        /// Daemon code 29: voucher signature invalid.
        public static let voucherSignatureInvalid = Code(.voucherSignatureInvalid)
        /// Daemon code 30: voucher seal did not open.
        public static let voucherSealOpenFailed = Code(.voucherSealOpenFailed)
        /// Daemon code 31: the courier rejected the envelope.
        public static let courierInvalidEnvelope = Code(.courierInvalidEnvelope)
        /// Daemon code 32: the replica epoch is outside the courier's window.
        public static let courierReplicaEpochOutsideWindow = Code(.courierReplicaEpochOutsideWindow)
        /// A thin-client error code this client does not know.
        public static let unknownDaemonError = Code(.unknownDaemonError)

        // MARK: Replica namespace

        /// Replica code 1: the box has not been written (or has expired).
        public static let boxIDNotFound = Code(.boxIDNotFound)
        /// Replica code 2: InvalidBoxID.
        public static let invalidBoxID = Code(.invalidBoxID)
        /// Replica code 3: InvalidSignature.
        public static let invalidSignature = Code(.invalidSignature)
        /// Replica code 4: DatabaseFailure.
        public static let databaseFailure = Code(.databaseFailure)
        /// Replica code 5: InvalidPayload.
        public static let replicaInvalidPayload = Code(.replicaInvalidPayload)
        /// Replica code 6: StorageFull.
        public static let storageFull = Code(.storageFull)
        /// Replica code 7: InternalError.
        public static let replicaInternalError = Code(.replicaInternalError)
        /// Replica code 8: InvalidEpoch.
        public static let invalidEpoch = Code(.invalidEpoch)
        /// Replica code 9: ReplicationFailed.
        public static let replicationFailed = Code(.replicationFailed)
        /// Replica code 10: the box already holds different bytes.
        public static let boxAlreadyExists = Code(.boxAlreadyExists)
        /// Replica code 11: the box holds a tombstone.
        public static let tombstone = Code(.tombstone)
        /// A replica error code this client does not know.
        public static let unknownReplicaError = Code(.unknownReplicaError)
    }

    /// Which code table a daemon error code was read in.
    public enum ErrorNamespace: String, Hashable, Sendable {
        /// kpclientd's thin-client codes (`ThinClientErr*`).
        case thinClient
        /// The Pigeonhole replica codes (`Replica*`).
        case replica
    }

    /// The error's stable code.
    public var code: Code
    /// A human-readable explanation; never contains secrets.
    public var message: String
    /// The raw `error_code` kpclientd sent, if the error came from the daemon.
    public var daemonErrorCode: UInt8?
    /// The namespace ``daemonErrorCode`` was interpreted in.
    public var namespace: ErrorNamespace?
    /// For codes 3 and 4 of `start_resending_encrypted_message_reply`: the thin-client code the
    /// same number would mean (InvalidRequest or InternalError).
    ///
    /// That field mixes two namespaces. Like the Go and Python clients, this client reads 3
    /// and 4 as the replica's InvalidSignature and DatabaseFailure (``code``); kpclientd itself
    /// may emit the same numbers as InvalidRequest and InternalError, which this property records.
    public var alternativeCode: Code?
    /// For ``Code-swift.struct/copyCommandFailed``: the replica's error code, if it sent one.
    public var replicaErrorCode: UInt8?
    /// For ``Code-swift.struct/copyCommandFailed``: the 1-based index of the envelope that failed.
    public var failedEnvelopeIndex: UInt64?

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether retrying the same operation later may succeed.
    public var isTransient: Bool {
        switch code.backing {
        case .notConnected, .connectionLost, .timeout, .tooManyPendingRequests, .daemonOffline,
            .handshakeFailed,
            .daemonConnectionLost, .daemonTimeout, .internalError, .maxRetries, .serviceUnavailable,
            .courierCacheCorruption, .courierPropagationError, .courierReplicaEpochOutsideWindow,
            .boxIDNotFound, .databaseFailure, .storageFull, .replicaInternalError, .invalidEpoch,
            .replicationFailed:
            return true
        default:
            return false
        }
    }

    public var description: String {
        var text = "thin client error (\(code))"
        if let daemonErrorCode, let namespace {
            text += " [\(namespace.rawValue) code \(daemonErrorCode)]"
        }
        return text + ": " + message
    }
}

extension ThinClientError {
    /// Maps a thin-client namespace `error_code` to an error; `nil` for 0 (success).
    static func thinClient(code raw: UInt8, context: String) -> ThinClientError? {
        let code: Code
        switch raw {
        case 0: return nil
        case 1: code = .daemonConnectionLost
        case 2: code = .daemonTimeout
        case 3: code = .invalidRequest
        case 4: code = .internalError
        case 5: code = .maxRetries
        case 6: code = .invalidChannel
        case 7: code = .channelNotFound
        case 8: code = .permissionDenied
        case 9: code = .invalidPayload
        case 10: code = .serviceUnavailable
        case 11: code = .duplicateCapability
        case 12: code = .courierCacheCorruption
        case 13: code = .courierPropagationError
        case 14: code = .invalidWriteCapability
        case 15: code = .invalidReadCapability
        case 16: code = .invalidResumeWriteChannelRequest
        case 17: code = .invalidResumeReadChannelRequest
        case 18: code = .impossibleHash
        case 19: code = .impossibleNewWriteCap
        case 20: code = .impossibleNewStatefulWriter
        case 21: code = .capabilityAlreadyInUse
        case 22: code = .mkemDecryptionFailed
        case 23: code = .bacapDecryptionFailed
        case 24: code = .startResendingCancelled
        case 25: code = .invalidTombstoneSignature
        case 26: code = .copyCommandFailed
        case 27: code = .payloadTooLarge
        case 28: code = .voucherHashMismatch
        case 29: code = .voucherSignatureInvalid
        case 30: code = .voucherSealOpenFailed
        case 31: code = .courierInvalidEnvelope
        case 32: code = .courierReplicaEpochOutsideWindow
        default: code = .unknownDaemonError
        }
        var error = ThinClientError(code, "\(context) failed with kpclientd error code \(raw)")
        error.daemonErrorCode = raw
        error.namespace = .thinClient
        return error
    }

    /// Maps a replica namespace error code to an error; `nil` for 0 (success).
    static func replica(code raw: UInt8, context: String) -> ThinClientError? {
        let code: Code
        switch raw {
        case 0: return nil
        case 1: code = .boxIDNotFound
        case 2: code = .invalidBoxID
        case 3: code = .invalidSignature
        case 4: code = .databaseFailure
        case 5: code = .replicaInvalidPayload
        case 6: code = .storageFull
        case 7: code = .replicaInternalError
        case 8: code = .invalidEpoch
        case 9: code = .replicationFailed
        case 10: code = .boxAlreadyExists
        case 11: code = .tombstone
        default: code = .unknownReplicaError
        }
        var error = ThinClientError(code, "\(context) failed with replica error code \(raw)")
        error.daemonErrorCode = raw
        error.namespace = .replica
        return error
    }

    /// Maps the mixed-namespace `error_code` of `start_resending_encrypted_message_reply`.
    ///
    /// The namespace is decided in one place, ``StartResendingErrorCode``: codes 1–11 are
    /// replica codes, as the Go and Python clients read them, so 3 is InvalidSignature and 4
    /// DatabaseFailure. kpclientd itself can emit thin-client 3 (InvalidRequest) and 4
    /// (InternalError) in the same field; that reading is kept in ``alternativeCode``. Codes 12
    /// and above are thin-client codes.
    static func resendingEncryptedMessage(code raw: UInt8, context: String) -> ThinClientError? {
        let classified = StartResendingErrorCode(rawValue: raw)
        switch classified {
        case .success:
            return nil
        case .replica(let code):
            var error = replica(code: code.rawValue, context: context)!
            if let alternative = classified.ambiguousThinClientMeaning {
                error.alternativeCode = thinClient(code: alternative.rawValue, context: context)!.code
            }
            return error
        case .thinClient(let code):
            return thinClient(code: code.rawValue, context: context)
        }
    }
}
