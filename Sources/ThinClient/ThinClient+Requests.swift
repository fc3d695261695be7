import CBOR
import StreamCrypto
import ThinWire

extension ThinClient {
    // MARK: - PKI and directory

    /// Fetches the signed PKI document of an epoch from the daemon's cache (`get_pki_document`).
    ///
    /// - Parameter epoch: the epoch, or 0 for the current one.
    /// - Throws: ``ThinClientError/Code-swift.struct/serviceUnavailable`` if the daemon has no
    ///   document for that epoch.
    public func getPKIDocument(epoch: UInt64 = 0) async throws -> PKIDocumentReply {
        let reply = try await performLocal(ThinKey.Request.getPKIDocument, [(ThinKey.Field.epoch, .unsigned(epoch))])
        try check(reply, context: "get_pki_document")
        return try decode(reply) { fields throws(ThinWireError) in
            PKIDocumentReply(payload: try fields.optionalBytes(ThinKey.Field.payload), epoch: try fields.optionalUInt(ThinKey.Field.epoch) ?? epoch)
        }
    }

    /// Lists the configured directory authorities (`get_directory_authorities`).
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/serviceUnavailable`` if none are configured.
    public func getDirectoryAuthorities() async throws -> [DirectoryAuthority] {
        let reply = try await performLocal(ThinKey.Request.getDirectoryAuthorities, [])
        try check(reply, context: "get_directory_authorities")
        return try decode(reply) { fields throws(ThinWireError) in
            var authorities: [DirectoryAuthority] = []
            for (position, item) in (try fields.optionalArray(ThinKey.Field.authorities) ?? []).enumerated() {
                let entry = ThinFields(item, context: "\(fields.context).authorities[\(position)]")
                var addresses: [String] = []
                for address in try entry.optionalArray("addresses") ?? [] {
                    guard let text = address.text else {
                        throw ThinWireError(.wrongType, "\(entry.context).addresses must hold text strings")
                    }
                    addresses.append(text)
                }
                authorities.append(
                    DirectoryAuthority(
                        identifier: try entry.optionalText("identifier") ?? "",
                        pkiSignatureScheme: try entry.optionalText("pki_signature_scheme") ?? "",
                        wireKEMScheme: try entry.optionalText("wire_kem_scheme") ?? "",
                        addresses: addresses,
                        identityPublicKeyPEM: try entry.optionalText("identity_public_key_pem") ?? "",
                        linkPublicKeyPEM: try entry.optionalText("link_public_key_pem") ?? "",
                        identityKeyHash: try entry.optionalBytes("identity_key_hash", length: ThinSizes.hash) ?? []
                    )
                )
            }
            return authorities
        }
    }

    // MARK: - Keys and indexes

    /// Derives a stream's capabilities from a 32-byte seed (`new_keypair`); deterministic in the seed.
    public func newKeypair(seed: [UInt8]) async throws -> NewKeypair {
        try checkLength(seed, ThinSizes.seed, "seed")
        let reply = try await performLocal(ThinKey.Request.newKeypair, [(ThinKey.Field.seed, .bytes(seed))])
        try check(reply, context: "new_keypair")
        return try decode(reply) { fields throws(ThinWireError) in
            NewKeypair(
                writeCapability: WriteCapability(unchecked: try fields.bytes(ThinKey.Field.writeCap, length: ThinSizes.writeCap)),
                readCapability: ReadCapability(unchecked: try fields.bytes(ThinKey.Field.readCap, length: ThinSizes.readCap)),
                firstMessageIndex: MessageBoxIndex(
                    unchecked: try fields.bytes(ThinKey.Field.firstMessageIndex, length: ThinSizes.messageBoxIndex)
                )
            )
        }
    }

    /// The BACAP successor of `index` (`next_message_box_index`).
    public func nextMessageBoxIndex(after index: MessageBoxIndex) async throws -> MessageBoxIndex {
        let reply = try await performLocal(ThinKey.Request.nextMessageBoxIndex, [(ThinKey.Field.messageBoxIndex, .bytes(index.bytes))])
        try check(reply, context: "next_message_box_index")
        return try decode(reply) { fields throws(ThinWireError) in
            MessageBoxIndex(unchecked: try fields.bytes(ThinKey.Field.nextMessageBoxIndex, length: ThinSizes.messageBoxIndex))
        }
    }

    /// The daemon's reading of an index's `Idx64` counter (`get_message_box_index_counter`).
    public func messageBoxIndexCounter(of index: MessageBoxIndex) async throws -> UInt64 {
        let reply = try await performLocal(
            ThinKey.Request.getMessageBoxIndexCounter, [(ThinKey.Field.messageBoxIndex, .bytes(index.bytes))]
        )
        try check(reply, context: "get_message_box_index_counter")
        return try decode(reply) { fields throws(ThinWireError) in try fields.uint(ThinKey.Field.counter) }
    }

    // MARK: - Encryption

    /// Encrypts a read of the box at `index` (`encrypt_read`).
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/internalError`` (4) without a PKI document.
    public func encryptRead(readCapability: ReadCapability, index: MessageBoxIndex) async throws -> EncryptedMessage {
        let reply = try await performLocal(
            ThinKey.Request.encryptRead,
            [(ThinKey.Field.readCap, .bytes(readCapability.bytes)), (ThinKey.Field.messageBoxIndex, .bytes(index.bytes))]
        )
        try check(reply, context: "encrypt_read")
        return try decodeEncryptedMessage(reply)
    }

    /// Encrypts a write of `plaintext` into the box at `index` (`encrypt_write`).
    ///
    /// An empty plaintext encrypts a tombstone.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/invalidRequest`` (3) if `plaintext` is longer
    ///   than the Pigeonhole `MaxPlaintextPayloadLength`.
    public func encryptWrite(plaintext: [UInt8], writeCapability: WriteCapability, index: MessageBoxIndex) async throws
        -> EncryptedMessage
    {
        let reply = try await performLocal(
            ThinKey.Request.encryptWrite,
            [
                (ThinKey.Field.plaintext, .bytes(plaintext)),
                (ThinKey.Field.writeCap, .bytes(writeCapability.bytes)),
                (ThinKey.Field.messageBoxIndex, .bytes(index.bytes)),
            ]
        )
        try check(reply, context: "encrypt_write")
        return try decodeEncryptedMessage(reply)
    }

    private func decodeEncryptedMessage(_ reply: ThinFields) throws -> EncryptedMessage {
        try decode(reply) { fields throws(ThinWireError) in
            EncryptedMessage(
                messageCiphertext: try fields.bytes(ThinKey.Field.messageCiphertext),
                envelopeDescriptor: try fields.bytes(ThinKey.Field.envelopeDescriptor),
                envelopeHash: try fields.bytes(ThinKey.Field.envelopeHash, length: ThinSizes.hash),
                nextMessageBoxIndex: MessageBoxIndex(
                    unchecked: try fields.bytes(ThinKey.Field.nextMessageBoxIndex, length: ThinSizes.messageBoxIndex)
                )
            )
        }
    }

    /// Encrypts tombstones for `maxCount` consecutive boxes from `start` (client-side, like the
    /// Python client's `tombstone_range`): one `encrypt_write` of an empty plaintext per box.
    public func tombstoneRange(writeCapability: WriteCapability, start: MessageBoxIndex, maxCount: Int) async throws
        -> TombstoneRangeResult
    {
        guard maxCount >= 0 else { throw ThinClientError(.invalidArgument, "maxCount must not be negative") }
        var envelopes: [TombstoneEnvelope] = []
        envelopes.reserveCapacity(min(maxCount, 1024))
        var current = start
        for _ in 0..<maxCount {
            let message = try await encryptWrite(plaintext: [], writeCapability: writeCapability, index: current)
            envelopes.append(TombstoneEnvelope(message: message, boxIndex: current))
            current = message.nextMessageBoxIndex
        }
        return TombstoneRangeResult(envelopes: envelopes, next: current)
    }

    // MARK: - ARQ

    /// Sends an encrypted read or write through the mixnet and waits for its terminal outcome
    /// (`start_resending_encrypted_message`).
    ///
    /// The daemon retransmits until the courier answers. A default write succeeds at the
    /// courier's ACK; with ``ResendingRequest/noIdempotentBoxAlreadyExists`` it waits for the
    /// replica's result. A default read waits until the box is written; with
    /// ``ResendingRequest/noRetryOnBoxIDNotFound`` an empty box fails at once with
    /// ``ThinClientError/Code-swift.struct/boxIDNotFound``.
    ///
    /// The request is paced (writes first, then polls, then waiting reads; see
    /// ``SubmissionLane``). It survives reconnections (it is replayed with the same query ID).
    /// Cancelling the calling task, or its deadline passing (``ResendingRequest/deadline``,
    /// by default ``ThinClientConfiguration/operationDeadline``), sends
    /// `cancel_resending_encrypted_message` for its envelope hash; a passed deadline throws
    /// ``ThinClientError/Code-swift.struct/timeout``. Re-issue such a request with a fresh
    /// `encrypt_read`/`encrypt_write`: the new envelope may take another courier.
    ///
    /// - Throws: ``ThinClientError``. Codes 1–11 of the reply are replica outcomes
    ///   (`boxIDNotFound`, `boxAlreadyExists`, `tombstone`, …), including 3 (`invalidSignature`)
    ///   and 4 (`databaseFailure`), as the Go and Python clients read them; kpclientd's own
    ///   meaning of those two numbers is in ``ThinClientError/alternativeCode``.
    ///
    /// The request is taken (`consuming`): it is encoded into the frame kept for replay and
    /// then dropped, so a read waiting for its box holds one copy of its envelope, not two.
    public func startResendingEncryptedMessage(_ request: consuming ResendingRequest) async throws -> ResendingResult {
        let deadline = resolve(request.deadline)
        let (submission, lane, envelopeHash) = try Self.encodeResending(consume request)
        let reply = try await performResending(submission, cancel: .envelope(hash: envelopeHash), lane: lane, deadline: deadline)
        return try Self.resendingResult(reply)
    }

    /// Starts a `start_resending_encrypted_message` whose outcome goes to `completion`: the
    /// callback form of ``startResendingEncryptedMessage(_:)``, for requests that may wait long
    /// (a read waiting for its box is written) without a task suspended for each.
    ///
    /// The outcomes are those of the async form, as a `Result`. The request is checked and
    /// encoded in this call (a bad request completes inside it); a short task then waits for
    /// admission by the pacer and sends it, and nothing waits for the reply but the pending
    /// entry, which keeps only the encoded frame and `completion`.
    ///
    /// - Returns: the operation, to cancel it; `completion` is called exactly once, with
    ///   ``ThinClientError/Code-swift.struct/cancelled`` if the cancel took effect.
    public nonisolated func startResendingEncryptedMessage(
        _ request: consuming ResendingRequest, completion: @escaping @Sendable (Result<ResendingResult, ThinClientError>) -> Void
    ) -> ResendingOperation {
        let setting = request.deadline
        let submission: EncodedRequest
        let lane: SubmissionLane
        let envelopeHash: [UInt8]
        do {
            (submission, lane, envelopeHash) = try Self.encodeResending(consume request)
        } catch {
            completion(.failure(Self.classify(error)))
            return ResendingOperation(client: nil, queryID: [])
        }
        let operation = ResendingOperation(client: self, queryID: submission.queryID)
        let task = Task {
            await self.submitResending(submission, cancel: .envelope(hash: envelopeHash), lane: lane, deadlineSetting: setting) { reply in
                completion(reply.flatMap { message in Result { () throws(ThinClientError) in try Self.resendingResult(message.fields) } })
            }
            operation.submissionEnded()
        }
        operation.started(task)
        return operation
    }

    /// ``submitResending(_:cancel:lane:deadline:completion:)`` with the deadline resolved now.
    private func submitResending(
        _ request: EncodedRequest, cancel: CancelTarget, lane: SubmissionLane, deadlineSetting: OperationDeadline,
        completion: @escaping @Sendable (Result<ThinMessage, ThinClientError>) -> Void
    ) async {
        await submitResending(request, cancel: cancel, lane: lane, deadline: resolve(deadlineSetting), completion: completion)
    }

    /// The outcome a `start_resending_encrypted_message_reply` carries.
    static func resendingResult(_ reply: ThinFields) throws(ThinClientError) -> ResendingResult {
        let code = try decodeFields(reply) { fields throws(ThinWireError) in try fields.errorCode() }
        if let error = ThinClientError.resendingEncryptedMessage(code: code, context: "start_resending_encrypted_message") {
            throw error
        }
        return try decodeFields(reply) { fields throws(ThinWireError) in
            ResendingResult(
                plaintext: try fields.optionalBytes(ThinKey.Field.plaintext),
                courierIdentityHash: try fields.optionalBytes(ThinKey.Field.courierIdentityHash, length: ThinSizes.hash),
                courierQueueID: try fields.optionalBytes(ThinKey.Field.courierQueueID)
            )
        }
    }

    /// Checks a `start_resending_encrypted_message` request and encodes it; a synchronous step,
    /// so that no field tree outlives it in the caller's async frame.
    private static func encodeResending(_ request: consuming ResendingRequest) throws -> (EncodedRequest, SubmissionLane, [UInt8]) {
        guard (request.readCapability == nil) != (request.writeCapability == nil) else {
            throw ThinClientError(.invalidArgument, "exactly one of the read and write capabilities must be given")
        }
        try checkLength(request.message.envelopeHash, ThinSizes.hash, "envelope hash")
        guard !request.message.envelopeDescriptor.isEmpty, !request.message.messageCiphertext.isEmpty else {
            throw ThinClientError(.invalidArgument, "the envelope descriptor and ciphertext must not be empty")
        }
        let fields: [(String, CBORValue)] = [
            (ThinKey.Field.readCap, request.readCapability.map { .bytes($0.bytes) } ?? .null),
            (ThinKey.Field.writeCap, request.writeCapability.map { .bytes($0.bytes) } ?? .null),
            (ThinKey.Field.messageBoxIndex, request.messageBoxIndex.map { .bytes($0.bytes) } ?? .null),
            (ThinKey.Field.replyIndex, request.replyIndex.map { .unsigned(UInt64($0)) } ?? .null),
            (ThinKey.Field.envelopeDescriptor, .bytes(request.message.envelopeDescriptor)),
            (ThinKey.Field.messageCiphertext, .bytes(request.message.messageCiphertext)),
            (ThinKey.Field.envelopeHash, .bytes(request.message.envelopeHash)),
            (ThinKey.Field.noRetryOnBoxIDNotFound, .bool(request.noRetryOnBoxIDNotFound)),
            (ThinKey.Field.noIdempotentBoxAlreadyExists, .bool(request.noIdempotentBoxAlreadyExists)),
        ]
        let lane: SubmissionLane = request.writeCapability != nil ? .write : (request.noRetryOnBoxIDNotFound ? .poll : .wait)
        let encoded = try EncodedRequest(ThinKey.Request.startResendingEncryptedMessage, fields)
        return (encoded, lane, request.message.envelopeHash)
    }

    /// Stops the daemon resending the query with `envelopeHash` (`cancel_resending_encrypted_message`).
    ///
    /// If the query was in flight, its ``startResendingEncryptedMessage(_:)`` call fails with
    /// ``ThinClientError/Code-swift.struct/startResendingCancelled``. Unknown hashes succeed.
    public func cancelResendingEncryptedMessage(envelopeHash: [UInt8]) async throws {
        try checkLength(envelopeHash, ThinSizes.hash, "envelope hash")
        let reply = try await performLocal(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelopeHash))])
        try check(reply, context: "cancel_resending_encrypted_message")
    }

    // MARK: - Copy commands

    /// Asks a courier to copy a temporary stream to its destinations (`start_resending_copy_command`).
    ///
    /// Waits for the terminal status. Cancelling the calling task sends
    /// `cancel_resending_copy_command` with BLAKE2b-256 of `writeCapability`.
    ///
    /// - Parameters:
    ///   - writeCapability: the write capability of the temporary copy stream.
    ///   - courierIdentityHash: pins a courier (32 bytes), together with `courierQueueID`.
    ///   - courierQueueID: the pinned courier's queue ID.
    /// - Throws: ``ThinClientError/Code-swift.struct/copyCommandFailed`` with
    ///   ``ThinClientError/replicaErrorCode`` and ``ThinClientError/failedEnvelopeIndex``.
    public func startResendingCopyCommand(
        writeCapability: WriteCapability, courierIdentityHash: [UInt8]? = nil, courierQueueID: [UInt8]? = nil
    ) async throws {
        var fields: [(String, CBORValue)] = [(ThinKey.Field.writeCap, .bytes(writeCapability.bytes))]
        if let courierIdentityHash {
            try checkLength(courierIdentityHash, ThinSizes.hash, "courier identity hash")
            fields.append((ThinKey.Field.courierIdentityHash, .bytes(courierIdentityHash)))
        }
        if let courierQueueID {
            fields.append((ThinKey.Field.courierQueueID, .bytes(courierQueueID)))
        }
        let reply = try await performResending(
            try EncodedRequest(ThinKey.Request.startResendingCopyCommand, fields),
            cancel: .copyCommand(writeCapHash: Self.writeCapabilityHash(writeCapability)), lane: .write, deadline: nil
        )
        let code = try decode(reply) { fields throws(ThinWireError) in try fields.errorCode() }
        guard var error = ThinClientError.thinClient(code: code, context: "start_resending_copy_command") else { return }
        if error.code == .copyCommandFailed {
            let details = try decode(reply) { fields throws(ThinWireError) in
                (try fields.optionalUInt(ThinKey.Field.replicaErrorCode), try fields.optionalUInt(ThinKey.Field.failedEnvelopeIndex))
            }
            error.replicaErrorCode = details.0.map { UInt8(truncatingIfNeeded: $0) } ?? 0
            error.failedEnvelopeIndex = details.1 ?? 0
            if let replica = error.replicaErrorCode, replica != 0 {
                let name = ReplicaErrorCode(rawValue: replica).name
                error.message += " (replica error \(name) at envelope \(error.failedEnvelopeIndex ?? 0))"
            }
        }
        throw error
    }

    /// Stops the daemon resending a copy command (`cancel_resending_copy_command`).
    ///
    /// - Parameter writeCapabilityHash: BLAKE2b-256 of the temporary stream's write capability
    ///   (see ``writeCapabilityHash(_:)``).
    public func cancelResendingCopyCommand(writeCapabilityHash: [UInt8]) async throws {
        try checkLength(writeCapabilityHash, ThinSizes.hash, "write capability hash")
        let reply = try await performLocal(
            ThinKey.Request.cancelResendingCopyCommand, [(ThinKey.Field.writeCapHash, .bytes(writeCapabilityHash))]
        )
        try check(reply, context: "cancel_resending_copy_command")
    }

    /// Cuts `payload` into copy-stream elements for one destination (`create_courier_envelopes_from_payload`).
    ///
    /// - Parameters:
    ///   - payload: at most 10 MiB.
    ///   - destinationWriteCapability: the destination stream.
    ///   - destinationStartIndex: the first destination box.
    ///   - isStart: whether the first element starts the copy stream.
    ///   - isLast: whether the last element carries the Final flag.
    public func createCourierEnvelopesFromPayload(
        _ payload: [UInt8], destinationWriteCapability: WriteCapability, destinationStartIndex: MessageBoxIndex,
        isStart: Bool, isLast: Bool
    ) async throws -> CourierEnvelopes {
        guard payload.count <= Self.maxCopyPayloadLength else {
            throw ThinClientError(.invalidArgument, "copy payload of \(payload.count) bytes exceeds \(Self.maxCopyPayloadLength)")
        }
        let reply = try await performLocal(
            ThinKey.Request.createCourierEnvelopesFromPayload,
            [
                (ThinKey.Field.payload, .bytes(payload)),
                (ThinKey.Field.destWriteCap, .bytes(destinationWriteCapability.bytes)),
                (ThinKey.Field.destStartIndex, .bytes(destinationStartIndex.bytes)),
                (ThinKey.Field.isStart, .bool(isStart)),
                (ThinKey.Field.isLast, .bool(isLast)),
            ]
        )
        try check(reply, context: "create_courier_envelopes_from_payload")
        return try decode(reply) { fields throws(ThinWireError) in
            CourierEnvelopes(
                envelopes: try Self.byteStrings(fields, ThinKey.Field.envelopes),
                buffer: nil,
                nextDestinationIndex: MessageBoxIndex(
                    unchecked: try fields.bytes(ThinKey.Field.nextDestIndex, length: ThinSizes.messageBoxIndex)
                )
            )
        }
    }

    /// Cuts several payloads into copy-stream elements (`create_courier_envelopes_from_multi_payload`).
    ///
    /// - Parameters:
    ///   - destinations: the payloads and where they go.
    ///   - isStart: whether the first element starts the copy stream.
    ///   - isLast: whether the last element carries the Final flag.
    ///   - buffer: the residual bytes returned by the previous call, if any.
    public func createCourierEnvelopesFromMultiPayload(
        _ destinations: [CourierDestination], isStart: Bool, isLast: Bool, buffer: [UInt8]? = nil
    ) async throws -> MultiPayloadEnvelopes {
        // kpclientd checks the limit per destination; the whole request is bounded by the 40 MiB frame cap.
        for (position, destination) in destinations.enumerated() where destination.payload.count > Self.maxCopyPayloadLength {
            throw ThinClientError(
                .invalidArgument,
                "copy payload of destination \(position) has \(destination.payload.count) bytes, more than \(Self.maxCopyPayloadLength)"
            )
        }
        var fields: [(String, CBORValue)] = [
            (
                ThinKey.Field.destinations,
                .array(
                    destinations.map {
                        .textMap([
                            (ThinKey.Field.payload, .bytes($0.payload)),
                            (ThinKey.Field.writeCap, .bytes($0.writeCapability.bytes)),
                            (ThinKey.Field.startIndex, .bytes($0.startIndex.bytes)),
                        ])
                    }
                )
            ),
            (ThinKey.Field.isStart, .bool(isStart)),
            (ThinKey.Field.isLast, .bool(isLast)),
        ]
        if let buffer { fields.append((ThinKey.Field.buffer, .bytes(buffer))) }
        let reply = try await performLocal(ThinKey.Request.createCourierEnvelopesFromMultiPayload, fields)
        try check(reply, context: "create_courier_envelopes_from_multi_payload")
        return try decode(reply) { fields throws(ThinWireError) in
            var indices: [MessageBoxIndex] = []
            for (position, item) in (try fields.optionalArray(ThinKey.Field.nextDestIndices) ?? []).enumerated() {
                guard let bytes = item.bytes, bytes.count == ThinSizes.messageBoxIndex else {
                    throw ThinWireError(.wrongLength, "\(fields.context).next_dest_indices[\(position)] must be 104 bytes")
                }
                indices.append(MessageBoxIndex(unchecked: bytes))
            }
            return MultiPayloadEnvelopes(
                envelopes: try Self.byteStrings(fields, ThinKey.Field.envelopes),
                buffer: try fields.optionalBytes(ThinKey.Field.buffer),
                nextDestinationIndices: indices
            )
        }
    }

    /// Encodes tombstones for a range of destination boxes as copy-stream elements
    /// (`create_courier_envelopes_from_tombstone_range`).
    ///
    /// - Parameters:
    ///   - destinationWriteCapability: the destination stream.
    ///   - destinationStartIndex: the first box to tombstone.
    ///   - maxCount: how many boxes.
    ///   - isStart: whether the first element starts the copy stream.
    ///   - isLast: whether the last element carries the Final flag.
    ///   - buffer: the residual bytes returned by the previous call, if any.
    public func createCourierEnvelopesFromTombstoneRange(
        destinationWriteCapability: WriteCapability, destinationStartIndex: MessageBoxIndex, maxCount: UInt32,
        isStart: Bool, isLast: Bool, buffer: [UInt8]? = nil
    ) async throws -> CourierEnvelopes {
        var fields: [(String, CBORValue)] = [
            (ThinKey.Field.destWriteCap, .bytes(destinationWriteCapability.bytes)),
            (ThinKey.Field.destStartIndex, .bytes(destinationStartIndex.bytes)),
            (ThinKey.Field.maxCount, .unsigned(UInt64(maxCount))),
            (ThinKey.Field.isStart, .bool(isStart)),
            (ThinKey.Field.isLast, .bool(isLast)),
        ]
        if let buffer { fields.append((ThinKey.Field.buffer, .bytes(buffer))) }
        let reply = try await performLocal(ThinKey.Request.createCourierEnvelopesFromTombstoneRange, fields)
        try check(reply, context: "create_courier_envelopes_from_tombstone_range")
        return try decode(reply) { fields throws(ThinWireError) in
            CourierEnvelopes(
                envelopes: try Self.byteStrings(fields, ThinKey.Field.envelopes),
                buffer: try fields.optionalBytes(ThinKey.Field.buffer),
                nextDestinationIndex: MessageBoxIndex(
                    unchecked: try fields.bytes(ThinKey.Field.nextDestIndex, length: ThinSizes.messageBoxIndex)
                )
            )
        }
    }

    /// The largest payload the copy helpers accept per destination: 10 MiB (kpclientd's limit).
    public static let maxCopyPayloadLength = 10 * 1024 * 1024

    // MARK: - Helpers

    /// Throws the thin-client error carried in a local reply's `error_code`, if any.
    func check(_ reply: ThinFields, context: String) throws {
        let code = try decode(reply) { fields throws(ThinWireError) in try fields.errorCode() }
        if let error = ThinClientError.thinClient(code: code, context: context) {
            throw error
        }
    }

    /// Runs a field decoder, turning wire errors into ``ThinClientError/Code-swift.struct/protocolViolation``.
    func decode<T>(_ reply: ThinFields, _ body: (ThinFields) throws(ThinWireError) -> T) throws(ThinClientError) -> T {
        try Self.decodeFields(reply, body)
    }

    /// Runs a field decoder, turning wire errors into ``ThinClientError/Code-swift.struct/protocolViolation``.
    static func decodeFields<T>(_ reply: ThinFields, _ body: (ThinFields) throws(ThinWireError) -> T) throws(ThinClientError) -> T {
        do {
            return try body(reply)
        } catch {
            throw ThinClientError(.protocolViolation, "malformed \(reply.context): \(error.message)")
        }
    }

    static func byteStrings(_ fields: ThinFields, _ key: String) throws(ThinWireError) -> [[UInt8]] {
        var result: [[UInt8]] = []
        for (position, item) in (try fields.optionalArray(key) ?? []).enumerated() {
            guard let bytes = item.bytes else {
                throw ThinWireError(.wrongType, "\(fields.context).\(key)[\(position)] must be a byte string")
            }
            result.append(bytes)
        }
        return result
    }
}

extension ThinClient {
    /// BLAKE2b-256 of a write capability: the key kpclientd uses for copy commands
    /// (`cancel_resending_copy_command.write_cap_hash`).
    public static func writeCapabilityHash(_ writeCapability: WriteCapability) -> [UInt8] {
        BLAKE2b.hash(writeCapability.bytes, outputLength: ThinSizes.hash)
    }
}
