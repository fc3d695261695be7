/// A code of the thin-client error namespace (0–32), as carried in `error_code`.
///
/// Unknown values are preserved; ``name`` then says so.
public struct ThinClientErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public let rawValue: UInt8
    /// Wraps a wire value.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 0: Success.
    public static let success = Self(rawValue: 0)
    /// 1: ConnectionLost.
    public static let connectionLost = Self(rawValue: 1)
    /// 2: Timeout.
    public static let timeout = Self(rawValue: 2)
    /// 3: InvalidRequest.
    public static let invalidRequest = Self(rawValue: 3)
    /// 4: InternalError.
    public static let internalError = Self(rawValue: 4)
    /// 5: MaxRetries.
    public static let maxRetries = Self(rawValue: 5)
    /// 6: InvalidChannel (legacy).
    public static let invalidChannel = Self(rawValue: 6)
    /// 7: ChannelNotFound (legacy).
    public static let channelNotFound = Self(rawValue: 7)
    /// 8: PermissionDenied.
    public static let permissionDenied = Self(rawValue: 8)
    /// 9: InvalidPayload.
    public static let invalidPayload = Self(rawValue: 9)
    /// 10: ServiceUnavailable.
    public static let serviceUnavailable = Self(rawValue: 10)
    /// 11: DuplicateCapability.
    public static let duplicateCapability = Self(rawValue: 11)
    /// 12: Courier cache corruption.
    public static let courierCacheCorruption = Self(rawValue: 12)
    /// 13: Courier propagation error.
    public static let propagationError = Self(rawValue: 13)
    /// 14: InvalidWriteCapability.
    public static let invalidWriteCapability = Self(rawValue: 14)
    /// 15: InvalidReadCapability.
    public static let invalidReadCapability = Self(rawValue: 15)
    /// 16: InvalidResumeWriteChannelRequest (legacy).
    public static let invalidResumeWriteChannelRequest = Self(rawValue: 16)
    /// 17: InvalidResumeReadChannelRequest (legacy).
    public static let invalidResumeReadChannelRequest = Self(rawValue: 17)
    /// 18: ImpossibleHash (legacy).
    public static let impossibleHash = Self(rawValue: 18)
    /// 19: ImpossibleNewWriteCap (legacy).
    public static let impossibleNewWriteCap = Self(rawValue: 19)
    /// 20: ImpossibleNewStatefulWriter (legacy).
    public static let impossibleNewStatefulWriter = Self(rawValue: 20)
    /// 21: CapabilityAlreadyInUse (legacy).
    public static let capabilityAlreadyInUse = Self(rawValue: 21)
    /// 22: MKEM decryption failed.
    public static let mkemDecryptionFailed = Self(rawValue: 22)
    /// 23: BACAP decryption failed.
    public static let bacapDecryptionFailed = Self(rawValue: 23)
    /// 24: StartResending cancelled.
    public static let startResendingCancelled = Self(rawValue: 24)
    /// 25: Invalid tombstone signature.
    public static let invalidTombstoneSignature = Self(rawValue: 25)
    /// 26: Copy command failed.
    public static let copyCommandFailed = Self(rawValue: 26)
    /// 27: PayloadTooLarge (defined; not emitted by current daemons).
    public static let payloadTooLarge = Self(rawValue: 27)
    /// 28: Voucher hash mismatch.
    public static let voucherHashMismatch = Self(rawValue: 28)
    /// 29: Voucher signature invalid.
    public static let voucherSignatureInvalid = Self(rawValue: 29)
    /// 30: Voucher seal open failed.
    public static let voucherSealOpenFailed = Self(rawValue: 30)
    /// 31: Courier: invalid envelope.
    public static let courierInvalidEnvelope = Self(rawValue: 31)
    /// 32: Courier: replica epoch outside the window.
    public static let courierInvalidEpoch = Self(rawValue: 32)

    private static let names: [String] = [
        "Success", "ConnectionLost", "Timeout", "InvalidRequest", "InternalError", "MaxRetries",
        "InvalidChannel", "ChannelNotFound", "PermissionDenied", "InvalidPayload", "ServiceUnavailable",
        "DuplicateCapability", "CourierCacheCorruption", "PropagationError", "InvalidWriteCapability",
        "InvalidReadCapability", "InvalidResumeWriteChannelRequest", "InvalidResumeReadChannelRequest",
        "ImpossibleHash", "ImpossibleNewWriteCap", "ImpossibleNewStatefulWriter", "CapabilityAlreadyInUse",
        "MKEMDecryptionFailed", "BACAPDecryptionFailed", "StartResendingCancelled", "InvalidTombstoneSignature",
        "CopyCommandFailed", "PayloadTooLarge", "VoucherHashMismatch", "VoucherSignatureInvalid",
        "VoucherSealOpenFailed", "CourierInvalidEnvelope", "CourierInvalidEpoch",
    ]

    /// The symbolic name, or `"Unknown(n)"`.
    public var name: String {
        Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : "Unknown(\(rawValue))"
    }

    /// Whether the code is one of the defined 0–32.
    public var isKnown: Bool { Int(rawValue) < Self.names.count }

    public var description: String { "\(name) (\(rawValue))" }
}

/// A code of the Pigeonhole replica error namespace (0–11).
public struct ReplicaErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public let rawValue: UInt8
    /// Wraps a wire value.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// 0: Success.
    public static let success = Self(rawValue: 0)
    /// 1: BoxIDNotFound (an empty box; an expected outcome).
    public static let boxIDNotFound = Self(rawValue: 1)
    /// 2: InvalidBoxID.
    public static let invalidBoxID = Self(rawValue: 2)
    /// 3: InvalidSignature.
    public static let invalidSignature = Self(rawValue: 3)
    /// 4: DatabaseFailure.
    public static let databaseFailure = Self(rawValue: 4)
    /// 5: InvalidPayload.
    public static let invalidPayload = Self(rawValue: 5)
    /// 6: StorageFull.
    public static let storageFull = Self(rawValue: 6)
    /// 7: InternalError.
    public static let internalError = Self(rawValue: 7)
    /// 8: InvalidEpoch.
    public static let invalidEpoch = Self(rawValue: 8)
    /// 9: ReplicationFailed.
    public static let replicationFailed = Self(rawValue: 9)
    /// 10: BoxAlreadyExists (an expected outcome).
    public static let boxAlreadyExists = Self(rawValue: 10)
    /// 11: Tombstone (an expected outcome).
    public static let tombstone = Self(rawValue: 11)

    private static let names: [String] = [
        "Success", "BoxIDNotFound", "InvalidBoxID", "InvalidSignature", "DatabaseFailure", "InvalidPayload",
        "StorageFull", "InternalError", "InvalidEpoch", "ReplicationFailed", "BoxAlreadyExists", "Tombstone",
    ]

    /// The symbolic name, or `"Unknown(n)"`.
    public var name: String {
        Int(rawValue) < Self.names.count ? Self.names[Int(rawValue)] : "Unknown(\(rawValue))"
    }

    /// Whether the code is one of the defined 0–11.
    public var isKnown: Bool { Int(rawValue) < Self.names.count }

    /// Whether this is an expected outcome rather than a failure (1, 10 or 11), as Python's
    /// `is_expected_outcome()`.
    public var isExpectedOutcome: Bool { self == .boxIDNotFound || self == .boxAlreadyExists || self == .tombstone }

    public var description: String { "\(name) (\(rawValue))" }
}

/// The meaning of `start_resending_encrypted_message_reply.error_code`, whose namespaces collide.
///
/// This is the one place that decides the namespace; `ThinClientError` derives from it. That
/// one field mixes replica codes 1–11 with thin-client codes (reference §4):
/// - `0` is success;
/// - `1...11` are read as **replica** codes, as the Python and Go clients do. Beware: the daemon
///   itself also emits thin-client `3` (InvalidRequest) and `4` (InternalError) in this field,
///   which therefore arrive as replica InvalidSignature (3) and DatabaseFailure (4). The two
///   meanings cannot be told apart on the wire; ``ambiguousThinClientMeaning`` names the
///   alternative reading;
/// - `12` and above are thin-client codes (12, 13, 22–25, 27, 31 and 32 occur).
public enum StartResendingErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// 0: the operation succeeded.
    case success
    /// 1–11: a replica outcome (see the type's discussion for 3 and 4).
    case replica(ReplicaErrorCode)
    /// 12 and above: a thin-client (daemon or courier) error.
    case thinClient(ThinClientErrorCode)

    /// Classifies a raw `error_code` of a `start_resending_encrypted_message_reply`.
    public init(rawValue: UInt8) {
        switch rawValue {
        case 0: self = .success
        case 1...11: self = .replica(ReplicaErrorCode(rawValue: rawValue))
        default: self = .thinClient(ThinClientErrorCode(rawValue: rawValue))
        }
    }

    /// The wire value.
    public var rawValue: UInt8 {
        switch self {
        case .success: return 0
        case .replica(let code): return code.rawValue
        case .thinClient(let code): return code.rawValue
        }
    }

    /// The thin-client code the daemon may have meant for raw 3 or 4 (InvalidRequest or
    /// InternalError), otherwise `nil`.
    public var ambiguousThinClientMeaning: ThinClientErrorCode? {
        switch rawValue {
        case 3: return .invalidRequest
        case 4: return .internalError
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .success: return "Success (0)"
        case .replica(let code): return "replica \(code)"
        case .thinClient(let code): return "thin client \(code)"
        }
    }
}
