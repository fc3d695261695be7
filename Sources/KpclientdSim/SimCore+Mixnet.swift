#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBOR
import ThinWire

/// Mixnet-path requests, run once the scheduler releases them (reference §3.4).
extension SimCore {
    // MARK: Legacy send_message (the echo service)

    func releaseSendMessage(_ fields: ThinFields, appID: [UInt8]) throws(ProtocolViolation) {
        let f = GoFields(fields)
        let messageID = try f.fixed(ThinKey.Field.id, ThinSizes.messageID)
        let withSURB = try f.bool(ThinKey.Field.withSURB)
        let surbID = try f.fixed(ThinKey.Field.surbID, ThinSizes.surbID) ?? [UInt8](repeating: 0, count: ThinSizes.surbID)
        let destination = try f.fixed(ThinKey.Field.destinationIDHash, ThinSizes.hash)
        let queue = try f.blob(ThinKey.Field.recipientQueueID) ?? []
        let payload = try f.blob(ThinKey.Field.payload) ?? []
        guard withSURB else { return }  // no SURB: nothing ever comes back
        let ufpl = sphinxGeometry.userForwardPayloadLength
        let eta = latency() + latency()
        var sent: [(String, CBORValue)] = [
            (ThinKey.Field.messageID, messageID.map(CBORValue.bytes) ?? .null),
            (ThinKey.Field.surbID, .bytes(surbID)),
            (ThinKey.Field.sentAt, .unsigned(UInt64(max(0, time(nil))))),
            (ThinKey.Field.replyETA, .int(eta.components.seconds * 1_000_000_000 + eta.components.attoseconds / 1_000_000_000)),
        ]
        guard payload.count <= ufpl else {
            sent.append((ThinKey.Field.err, .text("message too large: \(payload.count) > \(ufpl)")))
            send(ThinMessage(ThinKey.Event.messageSent, sent), toSession: appID)
            return
        }
        send(ThinMessage(ThinKey.Event.messageSent, sent), toSession: appID)
        // Only the echo service answers; other destinations (the courier spoken to directly, or
        // unknown nodes) swallow the message, as a real network would.
        guard destination == pki.serviceIdentityHash, queue == Array(SimPKI.echoEndpoint.utf8) else { return }
        let echoed = payload + [UInt8](repeating: 0, count: ufpl - payload.count)
        let reply = ThinMessage(ThinKey.Event.messageReply, [
            (ThinKey.Field.messageID, messageID.map(CBORValue.bytes) ?? .null),
            (ThinKey.Field.surbID, .bytes(surbID)),
            (ThinKey.Field.payload, .bytes(echoed)),
            (ThinKey.Field.errorCode, .unsigned(0)),
        ])
        spawn { core in
            do { try await Task.sleep(for: eta) } catch { return }
            await core.send(reply, toSession: appID, queueIfAway: true)
        }
    }

    // MARK: ARQ

    func arqReply(queryID: [UInt8], code: UInt8, plaintext: [UInt8]?, courier: Int? = nil) -> ThinMessage {
        ThinMessage(ThinKey.Reply.startResendingEncryptedMessage, [
            (ThinKey.Field.queryID, .bytes(queryID)),
            (ThinKey.Field.plaintext, plaintext.map(CBORValue.bytes) ?? .null),
            (ThinKey.Field.errorCode, .unsigned(UInt64(code))),
            (ThinKey.Field.courierIdentityHash, .bytes(courierIdentityHash(courier))),
            (ThinKey.Field.courierQueueID, .bytes(Array(SimPKI.courierEndpoint.utf8))),
        ])
    }

    struct ARQRequest: Sendable {
        var queryID: [UInt8]
        var readCap: [UInt8]?
        var writeCap: [UInt8]?
        var index: [UInt8]?
        var ciphertext: [UInt8]
        var hash: [UInt8]
        var noRetry: Bool
        var noIdempotent: Bool
    }

    func startARQ(_ fields: ThinFields, appID: [UInt8]) throws(ProtocolViolation) {
        let f = GoFields(fields)
        let q = try f.queryID()
        let readCap = try f.capability(ThinKey.Field.readCap, ThinSizes.readCap)
        let writeCap = try f.capability(ThinKey.Field.writeCap, ThinSizes.writeCap)
        let index = try f.capability(ThinKey.Field.messageBoxIndex, ThinSizes.messageBoxIndex)
        _ = try f.uint(ThinKey.Field.replyIndex)
        let descriptor = try f.blob(ThinKey.Field.envelopeDescriptor)
        let ciphertext = try f.blob(ThinKey.Field.messageCiphertext)
        let hash = try f.fixed(ThinKey.Field.envelopeHash, ThinSizes.hash)
        let noRetry = try f.bool(ThinKey.Field.noRetryOnBoxIDNotFound)
        let noIdempotent = try f.bool(ThinKey.Field.noIdempotentBoxAlreadyExists)
        guard let session = sessions[appID] else { return }
        guard (readCap == nil) != (writeCap == nil), let descriptor, !descriptor.isEmpty, let ciphertext, !ciphertext.isEmpty, let hash else {
            send(arqReply(queryID: q, code: ThinClientErrorCode.invalidRequest.rawValue, plaintext: nil), toSession: appID)
            return
        }
        // The daemon does not de-duplicate (`arqSend`): a replay after a resumed session starts a
        // second ARQ, and a cancel reaches only the newest.
        if session.arqByHash[hash] != nil || session.hasARQ(hash: hash) {
            model.duplicatedReplays += 1
        }
        guard session.operationCount < configuration.maxOperationsPerSession else {
            send(arqReply(queryID: q, code: ThinClientErrorCode.internalError.rawValue, plaintext: nil), toSession: appID)
            return
        }
        let op = Operation(serial: makeSerial(), queryID: q)
        op.hash = hash
        op.courier = pickCourier()
        session.addARQ(op)
        session.arqByHash[hash] = op.serial
        let request = ARQRequest(
            queryID: q, readCap: readCap, writeCap: writeCap, index: index, ciphertext: ciphertext, hash: hash,
            noRetry: noRetry, noIdempotent: noIdempotent
        )
        let serial = op.serial
        let courier = op.courier
        let paced = configuration.networkModel && rate != nil
        op.task = Task { [weak self] in
            guard let self else { return }
            let outcome: (code: UInt8, plaintext: [UInt8]?)?
            if paced {
                outcome = try? await self.runPacedARQ(request, appID: appID, courier: courier)
            } else {
                outcome = try? await self.runARQ(request, appID: appID, serial: serial, courier: courier)
            }
            guard let outcome else { return }
            await self.finishARQ(appID: appID, serial: serial, code: outcome.code, plaintext: outcome.plaintext)
        }
    }

    /// A read of the unpaced model parked until its box is written: what it needs to go on,
    /// without the request (its envelope is opened already) or a suspended task.
    struct ParkedRead: Sendable {
        var appID: [UInt8]
        var serial: UInt64
        var courier: Int
        /// Whether the request carried the box index (the reply is then the BACAP plaintext).
        var hasIndex: Bool
    }

    /// Suspends until cancelled: an operation bound to a courier that has left never completes.
    func hangOnDepartedCourier() async throws {
        while true {
            if shuttingDown { throw CancellationError() }
            try await Task.sleep(for: .seconds(3600))
        }
    }

    /// Runs one ARQ operation to its terminal outcome in the simple (unpaced) model; throws
    /// `CancellationError` when cancelled.
    ///
    /// A read of a box not yet written is parked (``park(_:on:)``) and the task ends: `nil`
    /// then, and the read goes on in a new task once the box is written (``resumeParked(_:boxID:)``).
    private func runARQ(_ request: ARQRequest, appID: [UInt8], serial: UInt64, courier: Int) async throws -> (code: UInt8, plaintext: [UInt8]?)? {
        try await sleepLatency()  // to the courier and its ACK
        if departedCouriers.contains(courier) { try await hangOnDepartedCourier() }
        guard let envelope = sealer.open(request.ciphertext) else {
            return (ThinClientErrorCode.courierInvalidEnvelope.rawValue, nil)
        }
        if request.writeCap != nil {
            // The daemon does not check the write cap against the envelope: the replica judges
            // the envelope (its signature) alone.
            if !request.noIdempotent {
                // Success at the courier's ACK; the replica's outcome is never seen.
                if random.unit() >= configuration.writeLossProbability { _ = storeApply(envelope) }
                return (0, nil)
            }
            // Wait for the replica's result; a lost attempt is retransmitted until one lands.
            while true {
                try Task.checkCancellation()
                if random.unit() < configuration.writeLossProbability {
                    try await sleepLatency()
                    try await sleepLatency()
                    continue
                }
                let code = storeApply(envelope)
                try await sleepLatency()
                return (code.rawValue, nil)
            }
        }
        guard let readCap = request.readCap, envelope.kind == .read, envelope.publicKey == Array(readCap[CapabilityLayout.readCapPublicKey]) else {
            return (ThinClientErrorCode.bacapDecryptionFailed.rawValue, nil)
        }
        if let index = request.index, index != envelope.index {
            return (ThinClientErrorCode.bacapDecryptionFailed.rawValue, nil)
        }
        let parked = ParkedRead(appID: appID, serial: serial, courier: courier, hasIndex: request.index != nil)
        return try await readBox(envelope.boxID, parked, noRetry: request.noRetry)
    }

    /// Reads box `boxID` for an ARQ: its outcome, or `nil` once the read is parked because the
    /// box is not written yet (unless `noRetry`, which answers BoxIDNotFound).
    private func readBox(_ boxID: [UInt8], _ read: ParkedRead, noRetry: Bool) async throws -> (code: UInt8, plaintext: [UInt8]?)? {
        try Task.checkCancellation()
        let result = store.read(boxID: boxID)
        switch result.code {
        case .success:
            try await sleepLatency()
            let plaintext = result.plaintext ?? []
            if !read.hasIndex {
                // Without the index the daemon skips BACAP decryption: the raw padded payload.
                let m = pigeonholeGeometry.maxPlaintextPayloadLength
                return (0, Bytes.be32(UInt32(plaintext.count)) + plaintext + [UInt8](repeating: 0, count: m - plaintext.count))
            }
            return (0, plaintext)
        case .tombstone:
            try await sleepLatency()
            return (ReplicaErrorCode.tombstone.rawValue, nil)
        default:
            if noRetry {
                try await sleepLatency()
                return (ReplicaErrorCode.boxIDNotFound.rawValue, nil)
            }
            if shuttingDown { throw CancellationError() }
            park(read, on: boxID)
            return nil
        }
    }

    /// Parks a read until box `boxID` is written; its operation's task ends.
    ///
    /// Thousands of reads wait at once for boxes nobody has written yet (a daemon's idle
    /// listeners keep hundreds of reads ahead each): as a small record each costs about
    /// 100 bytes, where a suspended task with its request held about 6 KiB.
    private func park(_ read: ParkedRead, on boxID: [UInt8]) {
        guard let op = sessions[read.appID]?.arq[read.serial] else { return }
        op.task = nil
        op.parkedOn = boxID
        parkedReads[boxID, default: []].append(read)
    }

    /// Takes a parked read off its box (its operation was cancelled or its session ended).
    func unpark(_ op: Operation) {
        guard let boxID = op.parkedOn else { return }
        op.parkedOn = nil
        guard var reads = parkedReads[boxID], let i = reads.firstIndex(where: { $0.serial == op.serial }) else { return }
        reads.remove(at: i)
        parkedReads[boxID] = reads.isEmpty ? nil : reads
    }

    /// Box `boxID` was written: the read goes on as a waiting read's task did after its wait
    /// (the retry's round trip, the courier check, the read again), in a new task.
    func resumeParked(_ read: ParkedRead, boxID: [UInt8]) {
        guard let op = sessions[read.appID]?.arq[read.serial], op.parkedOn == boxID else { return }
        op.parkedOn = nil
        op.task = Task { [weak self] in
            guard let self else { return }
            guard let outcome = try? await self.continueParked(read, boxID: boxID) else { return }
            await self.finishARQ(appID: read.appID, serial: read.serial, code: outcome.code, plaintext: outcome.plaintext)
        }
    }

    private func continueParked(_ read: ParkedRead, boxID: [UInt8]) async throws -> (code: UInt8, plaintext: [UInt8]?)? {
        if shuttingDown { throw CancellationError() }
        try await sleepLatency()  // the retry's round trip
        if departedCouriers.contains(read.courier) { try await hangOnDepartedCourier() }
        return try await readBox(boxID, read, noRetry: false)
    }

    func finishARQ(appID: [UInt8], serial: UInt64, code: UInt8, plaintext: [UInt8]?) {
        guard let session = sessions[appID], let op = session.removeARQ(serial) else { return }
        // As the daemon's arqEnvelopeHashMap: finishing any ARQ of a hash forgets the hash, so an
        // older duplicate finishing first leaves the newer one out of a cancel's reach.
        session.arqByHash[op.hash] = nil
        // Replies arriving while the client is away are dropped; the client replays on reconnect.
        send(arqReply(queryID: op.queryID, code: code, plaintext: plaintext, courier: op.courier), toSession: appID)
    }

    // MARK: Copy commands

    func copyReply(queryID: [UInt8], code: ThinClientErrorCode, replicaCode: UInt8 = 0, failedIndex: UInt64 = 0) -> ThinMessage {
        var fields: [(String, CBORValue)] = [
            (ThinKey.Field.queryID, .bytes(queryID)),
            (ThinKey.Field.errorCode, .unsigned(UInt64(code.rawValue))),
        ]
        if replicaCode != 0 { fields.append((ThinKey.Field.replicaErrorCode, .unsigned(UInt64(replicaCode)))) }
        if failedIndex != 0 { fields.append((ThinKey.Field.failedEnvelopeIndex, .unsigned(failedIndex))) }
        return ThinMessage(ThinKey.Reply.startResendingCopyCommand, fields)
    }

    func startCopy(_ fields: ThinFields, appID: [UInt8]) throws(ProtocolViolation) {
        let f = GoFields(fields)
        let q = try f.queryID()
        let writeCap = try f.capability(ThinKey.Field.writeCap, ThinSizes.writeCap)
        let pinned = try f.fixed(ThinKey.Field.courierIdentityHash, ThinSizes.hash)
        _ = try f.blob(ThinKey.Field.courierQueueID)
        guard let session = sessions[appID] else { return }
        guard let writeCap else {
            send(copyReply(queryID: q, code: .invalidRequest), toSession: appID)
            return
        }
        let hash = SimCrypto.blake2b(writeCap)
        if let existing = session.copies[hash] {
            existing.queryID = q
            joinedReplays += 1
            return
        }
        guard session.operationCount < configuration.maxOperationsPerSession else {
            send(copyReply(queryID: q, code: .internalError), toSession: appID)
            return
        }
        let op = Operation(serial: makeSerial(), queryID: q)
        op.hash = hash
        op.courier = pinned.flatMap(courierSerial(identityHash:)) ?? pickCourier()
        session.copies[hash] = op
        let serial = op.serial
        let courier = op.courier
        op.task = Task { [weak self] in
            guard let self else { return }
            guard let outcome = try? await self.runCopy(writeCap: writeCap, courier: courier) else { return }
            await self.finishCopy(appID: appID, hash: hash, serial: serial, outcome: outcome)
        }
    }

    struct CopyOutcome: Sendable {
        var code: ThinClientErrorCode
        var replicaCode: UInt8 = 0
        var failedIndex: UInt64 = 0
    }

    /// The courier's copy: read the temporary stream up to the Final element, write every
    /// envelope in order (aborting at the first failure, without rollback), then tombstone the
    /// temporary boxes (best effort).
    private func runCopy(writeCap: [UInt8], courier: Int) async throws -> CopyOutcome {
        try await sleepLatency()
        if departedCouriers.contains(courier) { try await hangOnDepartedCourier() }
        let publicKey = Array(writeCap[CapabilityLayout.writeCapPublicKey])
        var index = Array(writeCap[CapabilityLayout.writeCapIndex])
        var tempIndexes: [[UInt8]] = []
        var data: [UInt8] = []
        var sawFinal = false
        let failed = { (replica: ReplicaErrorCode) in CopyOutcome(code: .copyCommandFailed, replicaCode: replica.rawValue) }
        while !sawFinal {
            guard tempIndexes.count < configuration.maxCopyElements else { return failed(.invalidPayload) }
            try Task.checkCancellation()
            let boxID = Capabilities.boxID(publicKey: publicKey, index: index)
            let result = store.read(boxID: boxID)
            switch result.code {
            case .success:
                guard let element = CopyStream.parseElement(result.plaintext ?? []) else { return failed(.invalidPayload) }
                data += element.data
                guard data.count <= Self.maxCopyPayload * 2 else { return failed(.invalidPayload) }
                sawFinal = element.flags & CopyStream.finalFlag != 0
                tempIndexes.append(index)
                index = Capabilities.successor(of: index)
            case .tombstone:
                return failed(.tombstone)
            default:
                try await waitForBox(boxID)  // the courier keeps polling until the element arrives
            }
        }
        guard let records = CopyStream.parseRecords(data, maxRecords: configuration.maxCopyElements * 2) else {
            return failed(.invalidPayload)
        }
        for (i, record) in records.enumerated() {
            try Task.checkCancellation()
            guard let envelope = sealer.open(record), envelope.kind == .write else {
                return CopyOutcome(code: .copyCommandFailed, replicaCode: ReplicaErrorCode.invalidPayload.rawValue, failedIndex: UInt64(i + 1))
            }
            let code = storeApply(envelope)
            guard code == .success else {
                return CopyOutcome(code: .copyCommandFailed, replicaCode: code.rawValue, failedIndex: UInt64(i + 1))
            }
        }
        for tempIndex in tempIndexes {
            _ = storeApply(EnvelopeSealer.signedWrite(writeCap: writeCap, index: tempIndex, plaintext: []))
        }
        try await sleepLatency()
        return CopyOutcome(code: .success)
    }

    private func finishCopy(appID: [UInt8], hash: [UInt8], serial: UInt64, outcome: CopyOutcome) {
        guard let session = sessions[appID], let op = session.copies[hash], op.serial == serial else { return }
        session.copies[hash] = nil
        send(copyReply(queryID: op.queryID, code: outcome.code, replicaCode: outcome.replicaCode, failedIndex: outcome.failedIndex), toSession: appID)
    }
}
