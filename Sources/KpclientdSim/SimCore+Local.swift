import CBOR
import ThinWire

/// Local requests: served inline, in order, on the connection's reader (reference §3.2).
extension SimCore {
    typealias Pairs = [(String, CBORValue)]

    static let maxCopyPayload = 10 << 20
    /// The largest residual `buffer` accepted back from a client.
    static let maxResidual = maxCopyPayload + maxCopyPayload / 2

    /// The most tombstones one `create_courier_envelopes_from_tombstone_range` call encodes, so
    /// that its copy stream stays within the 10 MiB a payload may have.
    var maxTombstoneRange: UInt64 {
        UInt64(Self.maxCopyPayload / (pigeonholeGeometry.courierQueryWriteLength + 4))
    }

    func reply(_ request: String, _ queryID: [UInt8], _ fields: Pairs, _ code: ThinClientErrorCode) -> ThinMessage {
        ThinMessage(ThinKey.Reply.of(request), [(ThinKey.Field.queryID, .bytes(queryID))] + fields + [(ThinKey.Field.errorCode, .unsigned(UInt64(code.rawValue)))])
    }

    /// Serves a local request; `nil` for keys the daemon silently drops (unknown keys, vouchers).
    func handleLocal(_ message: ThinMessage, appID: [UInt8]) throws(ProtocolViolation) -> ThinMessage? {
        let f = GoFields(message.fields)
        let key = message.key
        switch key {
        case ThinKey.Request.getPKIDocument:
            let q = try f.queryID()
            let requested = try f.uint(ThinKey.Field.epoch)
            let epoch = requested == 0 ? currentEpoch : requested
            guard epoch <= currentEpoch, epoch + 4 >= currentEpoch else {
                return reply(key, q, [(ThinKey.Field.payload, .null), (ThinKey.Field.epoch, .unsigned(epoch))], .serviceUnavailable)
            }
            return reply(key, q, [(ThinKey.Field.payload, .bytes(pki.signedDocument(epoch: epoch, couriers: couriers, lambdaP: publishedLambdaP))), (ThinKey.Field.epoch, .unsigned(epoch))], .success)

        case ThinKey.Request.getDirectoryAuthorities:
            return reply(key, try f.queryID(), [(ThinKey.Field.authorities, pki.authorities)], .success)

        case ThinKey.Request.newKeypair:
            let q = try f.queryID()
            guard let seed = try f.blob(ThinKey.Field.seed), seed.count >= ThinSizes.seed else {
                return reply(key, q, [(ThinKey.Field.writeCap, .null), (ThinKey.Field.readCap, .null), (ThinKey.Field.firstMessageIndex, .null)], .invalidRequest)
            }
            let keypair = Capabilities.keypair(seed: seed)
            return reply(key, q, [
                (ThinKey.Field.writeCap, .bytes(keypair.writeCap)), (ThinKey.Field.readCap, .bytes(keypair.readCap)),
                (ThinKey.Field.firstMessageIndex, .bytes(keypair.firstIndex)),
            ], .success)

        case ThinKey.Request.nextMessageBoxIndex:
            let q = try f.queryID()
            guard let index = try f.capability(ThinKey.Field.messageBoxIndex, ThinSizes.messageBoxIndex) else {
                return reply(key, q, [(ThinKey.Field.nextMessageBoxIndex, .null)], .invalidRequest)
            }
            return reply(key, q, [(ThinKey.Field.nextMessageBoxIndex, .bytes(Capabilities.successor(of: index)))], .success)

        case ThinKey.Request.getMessageBoxIndexCounter:
            let q = try f.queryID()
            guard let index = try f.capability(ThinKey.Field.messageBoxIndex, ThinSizes.messageBoxIndex) else {
                return reply(key, q, [(ThinKey.Field.counter, .null)], .invalidRequest)
            }
            return reply(key, q, [(ThinKey.Field.counter, .unsigned(CapabilityLayout.counter(ofIndex: index) ?? 0))], .success)

        case ThinKey.Request.encryptRead:
            let q = try f.queryID()
            let readCap = try f.capability(ThinKey.Field.readCap, ThinSizes.readCap)
            let index = try f.capability(ThinKey.Field.messageBoxIndex, ThinSizes.messageBoxIndex)
            guard let readCap, let index else { return reply(key, q, Self.nullEncryptFields, .invalidRequest) }
            let envelope = sealer.sealRead(publicKey: Array(readCap[CapabilityLayout.readCapPublicKey]), index: index, nonce: random.bytes(24))
            return reply(key, q, encryptFields(envelope, index: index), .success)

        case ThinKey.Request.encryptWrite:
            let q = try f.queryID()
            let plaintext = try f.blob(ThinKey.Field.plaintext)
            let writeCap = try f.capability(ThinKey.Field.writeCap, ThinSizes.writeCap)
            let index = try f.capability(ThinKey.Field.messageBoxIndex, ThinSizes.messageBoxIndex)
            guard let plaintext, let writeCap, let index, plaintext.count <= pigeonholeGeometry.maxPlaintextPayloadLength else {
                return reply(key, q, Self.nullEncryptFields, .invalidRequest)
            }
            let envelope = sealer.sealWrite(writeCap: writeCap, index: index, plaintext: plaintext, nonce: random.bytes(24))
            return reply(key, q, encryptFields(envelope, index: index), .success)

        case ThinKey.Request.cancelResendingEncryptedMessage:
            let q = try f.queryID()
            guard let hash = try f.fixed(ThinKey.Field.envelopeHash, ThinSizes.hash) else { return reply(key, q, [], .invalidRequest) }
            // Only the newest ARQ of the hash is reachable (an older duplicate keeps running).
            if let session = sessions[appID], let serial = session.arqByHash.removeValue(forKey: hash),
                let op = session.removeARQ(serial)
            {
                stop(op)
                send(arqReply(queryID: op.queryID, code: ThinClientErrorCode.startResendingCancelled.rawValue, plaintext: nil, courier: op.courier), toSession: appID)
            } else if let queryID = dropQueuedStart(envelopeHash: hash, appID: appID) {
                send(arqReply(queryID: queryID, code: ThinClientErrorCode.startResendingCancelled.rawValue, plaintext: nil), toSession: appID)
            }
            return reply(key, q, [], .success)

        case ThinKey.Request.cancelResendingCopyCommand:
            let q = try f.queryID()
            guard let hash = try f.fixed(ThinKey.Field.writeCapHash, ThinSizes.hash) else { return reply(key, q, [], .invalidRequest) }
            if let session = sessions[appID], let op = session.copies.removeValue(forKey: hash) {
                op.task?.cancel()
                send(copyReply(queryID: op.queryID, code: .startResendingCancelled), toSession: appID)
            }
            return reply(key, q, [], .success)

        case ThinKey.Request.createCourierEnvelopesFromPayload:
            let q = try f.queryID()
            let payload = try f.blob(ThinKey.Field.payload)
            let cap = try f.capability(ThinKey.Field.destWriteCap, ThinSizes.writeCap)
            let start = try f.capability(ThinKey.Field.destStartIndex, ThinSizes.messageBoxIndex)
            let isStart = try f.bool(ThinKey.Field.isStart)
            let isLast = try f.bool(ThinKey.Field.isLast)
            guard let payload, let cap, let start, payload.count <= Self.maxCopyPayload else {
                return reply(key, q, [(ThinKey.Field.envelopes, .null), (ThinKey.Field.nextDestIndex, .null)], .invalidRequest)
            }
            var stream: [UInt8] = []
            let next = appendPayloadRecords(payload, writeCap: cap, start: start, to: &stream)
            var residual = CopyStream.Residual(startPending: isStart, bytes: stream)
            let elements = CopyStream.cut(&residual, maxPlaintextLength: pigeonholeGeometry.maxPlaintextPayloadLength, flush: true, final: isLast)
            return reply(key, q, [(ThinKey.Field.envelopes, .array(elements.map(CBORValue.bytes))), (ThinKey.Field.nextDestIndex, .bytes(next))], .success)

        case ThinKey.Request.createCourierEnvelopesFromMultiPayload:
            return try multiPayload(f, key: key)

        case ThinKey.Request.createCourierEnvelopesFromTombstoneRange:
            let q = try f.queryID()
            let cap = try f.capability(ThinKey.Field.destWriteCap, ThinSizes.writeCap)
            let start = try f.capability(ThinKey.Field.destStartIndex, ThinSizes.messageBoxIndex)
            let count = try f.uint(ThinKey.Field.maxCount)
            let isStart = try f.bool(ThinKey.Field.isStart)
            let isLast = try f.bool(ThinKey.Field.isLast)
            let buffer = try f.blob(ThinKey.Field.buffer)
            let failure: Pairs = [(ThinKey.Field.envelopes, .null), (ThinKey.Field.buffer, .null), (ThinKey.Field.nextDestIndex, .null)]
            guard let cap, let start, count <= maxTombstoneRange,
                var residual = CopyStream.Residual(buffer: buffer, isStart: isStart, limit: Self.maxResidual)
            else { return reply(key, q, failure, .invalidRequest) }
            guard count > 0 else {
                return reply(key, q, [(ThinKey.Field.envelopes, .null), (ThinKey.Field.buffer, buffer.map(CBORValue.bytes) ?? .null), (ThinKey.Field.nextDestIndex, .bytes(start))], .success)
            }
            var index = start
            for _ in 0..<count {
                CopyStream.appendRecord(sealer.sealWrite(writeCap: cap, index: index, plaintext: [], nonce: random.bytes(24)), to: &residual.bytes)
                index = Capabilities.successor(of: index)
            }
            let elements = CopyStream.cut(&residual, maxPlaintextLength: pigeonholeGeometry.maxPlaintextPayloadLength, flush: isLast, final: isLast)
            return reply(key, q, [
                (ThinKey.Field.envelopes, .array(elements.map(CBORValue.bytes))),
                (ThinKey.Field.buffer, isLast ? .null : .bytes(residual.encoded)),
                (ThinKey.Field.nextDestIndex, .bytes(index)),
            ], .success)

        default:
            // Vouchers are not simulated, and unknown keys are silently dropped, as the daemon does.
            return nil
        }
    }

    static let nullEncryptFields: Pairs = [
        (ThinKey.Field.messageCiphertext, .null), (ThinKey.Field.envelopeDescriptor, .null),
        (ThinKey.Field.envelopeHash, .null), (ThinKey.Field.nextMessageBoxIndex, .null),
    ]

    private func encryptFields(_ envelope: [UInt8], index: [UInt8]) -> Pairs {
        [
            (ThinKey.Field.messageCiphertext, .bytes(envelope)),
            (ThinKey.Field.envelopeDescriptor, .bytes(EnvelopeSealer.descriptor(epoch: currentEpoch, replyKey: random.bytes(32)))),
            (ThinKey.Field.envelopeHash, .bytes(SimCrypto.blake2b(envelope))),
            (ThinKey.Field.nextMessageBoxIndex, .bytes(Capabilities.successor(of: index))),
        ]
    }

    /// Cuts `payload` into chunks of M − 4 bytes, seals one write envelope per destination box
    /// starting at `start`, appends the records to `stream`, and returns the next index.
    private func appendPayloadRecords(_ payload: [UInt8], writeCap: [UInt8], start: [UInt8], to stream: inout [UInt8]) -> [UInt8] {
        let chunk = pigeonholeGeometry.maxPlaintextPayloadLength - 4
        var index = start
        var offset = 0
        while offset < payload.count {
            let end = min(payload.count, offset + chunk)
            let envelope = sealer.sealWrite(writeCap: writeCap, index: index, plaintext: Array(payload[offset..<end]), nonce: random.bytes(24))
            CopyStream.appendRecord(envelope, to: &stream)
            index = Capabilities.successor(of: index)
            offset = end
        }
        return index
    }

    private func multiPayload(_ f: GoFields, key: String) throws(ProtocolViolation) -> ThinMessage {
        let q = try f.queryID()
        let isStart = try f.bool(ThinKey.Field.isStart)
        let isLast = try f.bool(ThinKey.Field.isLast)
        let buffer = try f.blob(ThinKey.Field.buffer)
        let failure: Pairs = [(ThinKey.Field.envelopes, .null), (ThinKey.Field.buffer, .null), (ThinKey.Field.nextDestIndices, .null)]
        guard let rawDestinations = f.fields.raw(ThinKey.Field.destinations) else { return reply(key, q, failure, .invalidRequest) }
        guard let destinations = rawDestinations.array else { throw ProtocolViolation(reason: "destinations is not an array") }
        guard var residual = CopyStream.Residual(buffer: buffer, isStart: isStart, limit: Self.maxResidual) else {
            return reply(key, q, failure, .invalidRequest)
        }
        var total = 0
        var parsed: [(payload: [UInt8], cap: [UInt8], start: [UInt8])] = []
        for (i, destination) in destinations.enumerated() {
            guard case .map = destination else { throw ProtocolViolation(reason: "destinations[\(i)] is not a map") }
            let d = GoFields(ThinFields(destination, context: "destinations[\(i)]"))
            let payload = try d.blob(ThinKey.Field.payload)
            let cap = try d.capability(ThinKey.Field.writeCap, ThinSizes.writeCap)
            let start = try d.capability(ThinKey.Field.startIndex, ThinSizes.messageBoxIndex)
            guard let payload, let cap, let start else { return reply(key, q, failure, .invalidRequest) }
            total += payload.count
            guard total <= Self.maxCopyPayload else { return reply(key, q, failure, .invalidRequest) }
            parsed.append((payload, cap, start))
        }
        var nextIndices: [CBORValue] = []
        for destination in parsed {
            let next = appendPayloadRecords(destination.payload, writeCap: destination.cap, start: destination.start, to: &residual.bytes)
            nextIndices.append(.bytes(next))
        }
        let elements = CopyStream.cut(&residual, maxPlaintextLength: pigeonholeGeometry.maxPlaintextPayloadLength, flush: isLast, final: isLast)
        return reply(key, q, [
            (ThinKey.Field.envelopes, .array(elements.map(CBORValue.bytes))),
            (ThinKey.Field.buffer, isLast ? .null : .bytes(residual.encoded)),
            (ThinKey.Field.nextDestIndices, .array(nextIndices)),
        ], .success)
    }

    /// Removes a `start_resending_encrypted_message` for `envelopeHash` that still waits in the
    /// session's connection queue for a send tick, returning its query ID.
    ///
    /// The real daemon handles a connection's requests in order, so a cancel always finds the
    /// ARQ its start created; here local requests overtake the queue, so a cancel must also
    /// reach a start that was not released yet (else it would run, unwanted, and hang for ever
    /// on a courier that leaves).
    func dropQueuedStart(envelopeHash: [UInt8], appID: [UInt8]) -> [UInt8]? {
        for connection in connections.values where connection.appID == appID {
            guard
                let position = connection.queue.firstIndex(where: { message in
                    message.key == ThinKey.Request.startResendingEncryptedMessage
                        && (try? GoFields(message.fields).fixed(ThinKey.Field.envelopeHash, ThinSizes.hash)) == envelopeHash
                })
            else { continue }
            let message = connection.queue.remove(at: position)
            connection.spaceWaiter?.resume()
            connection.spaceWaiter = nil
            return (try? GoFields(message.fields).queryID()) ?? [UInt8](repeating: 0, count: ThinSizes.queryID)
        }
        return nil
    }
}
