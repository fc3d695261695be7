import ThinWire

/// The network model of the ARQ (`client/daemon.go`, `client/arq.go`, `client/pigeonhole.go`):
/// every packet costs a send tick, a read is an ACK round then a payload round, a read of an
/// empty box is retried on ticks, and a packet without a reply within the expected round trip
/// plus the slop is retransmitted, on the same courier, for ever.
extension SimCore {
    /// Sleeps `duration` (a yield when zero); throws once shutdown has begun or when cancelled.
    func sleepModel(_ duration: Duration) async throws {
        if shuttingDown { throw CancellationError() }
        if duration > .zero { try await Task.sleep(for: duration) } else { await Task.yield() }
        if shuttingDown { throw CancellationError() }
        try Task.checkCancellation()
    }

    /// Waits for a send tick in the session's resend queue (served before new requests).
    ///
    /// When the queue already holds `resendQueueCapacity` resends, the resend is re-armed after
    /// `resendQueueFullBackoff` (counted as an overflow), as `enqueueResend` does.
    func awaitResendTick(appID: [UInt8]) async throws {
        while true {
            if shuttingDown { throw CancellationError() }
            try Task.checkCancellation()
            guard let session = sessions[appID] else { throw CancellationError() }
            guard rate != nil else {
                // Switched to unpaced while in flight: a token wait keeps a retry loop from spinning.
                try await Task.sleep(for: .milliseconds(1))
                return
            }
            if session.resendWaiters.count >= configuration.resendQueueCapacity {
                if session.connectionID != nil { model.resendQueueOverflows += 1 }
                try await Task.sleep(for: configuration.resendQueueFullBackoff)
                continue
            }
            let serial = makeSerial()
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    if Task.isCancelled || shuttingDown {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        session.resendWaiters.append(TickWaiter(serial: serial, continuation: continuation))
                        wakeScheduler()
                    }
                }
            } onCancel: {
                Task { await self.cancelTickWaiter(appID: appID, serial: serial) }
            }
            return
        }
    }

    private func cancelTickWaiter(appID: [UInt8], serial: UInt64) {
        guard let session = sessions[appID], let i = session.resendWaiters.firstIndex(where: { $0.serial == serial }) else { return }
        let waiter = session.resendWaiters.remove(at: i)
        waiter.continuation.resume(throwing: CancellationError())
    }

    /// Runs one ARQ in the network model; its first packet went out on the tick that released
    /// the request. Throws `CancellationError` when cancelled.
    func runPacedARQ(_ request: ARQRequest, appID: [UInt8], courier: Int) async throws -> (code: UInt8, plaintext: [UInt8]?) {
        guard let envelope = sealer.open(request.ciphertext) else {
            try await sleepLatency()
            return (ThinClientErrorCode.courierInvalidEnvelope.rawValue, nil)
        }
        let isRead = request.writeCap == nil
        if isRead {
            guard let readCap = request.readCap, envelope.kind == .read, envelope.publicKey == Array(readCap[CapabilityLayout.readCapPublicKey]),
                request.index == nil || request.index == envelope.index
            else {
                try await sleepLatency()
                return (ThinClientErrorCode.bacapDecryptionFailed.rawValue, nil)
            }
        }
        let readBoxID = isRead ? envelope.boxID : nil
        let deadline = configuration.meanLatency + configuration.roundTripSlop
        let dispatch: () -> CourierResult? = { [unowned self] in
            if let readBoxID {
                let read = self.store.read(boxID: readBoxID)
                return CourierResult(code: read.code.rawValue, plaintext: read.plaintext)
            }
            if self.random.unit() < self.configuration.writeLossProbability { return nil }  // the replica never answers
            return CourierResult(code: self.storeApply(envelope).rawValue, plaintext: nil)
        }
        var acknowledged = false
        var firstPacket = true
        while true {
            if !firstPacket { try await awaitResendTick(appID: appID) }
            firstPacket = false
            if let readBoxID, !store.holds(boxID: readBoxID) { model.ticksOnEmptyBoxReads += 1 }
            let roundTrip = latency()
            let toCourier = min(roundTrip / 2, deadline)
            try await sleepModel(toCourier)
            var answer: CourierAnswer?
            if roundTrip / 2 <= deadline, !departedCouriers.contains(courier) {
                answer = courierAnswer(courier: courier, hash: request.hash, readBoxID: readBoxID, dispatch: dispatch)
            }
            guard let answer, roundTrip <= deadline else {
                // No reply within the round trip plus the slop: the daemon retransmits (a late
                // reply carries the rotated-away SURB ID and is dropped).
                try await sleepModel(deadline - toCourier)
                model.arqRetransmissions += 1
                continue
            }
            try await sleepModel(roundTrip - toCourier)
            switch answer {
            case .ack:
                if !acknowledged && !isRead && !request.noIdempotent { return (0, nil) }  // success at the courier's ACK
                acknowledged = true  // reads and checked writes poll for the payload on the next tick
            case .payload(let result):
                if result.code == 0 {
                    guard isRead else { return (0, nil) }
                    return (0, readPlaintext(result.plaintext ?? [], index: request.index))
                }
                if isRead && result.code == ReplicaErrorCode.boxIDNotFound.rawValue && !request.noRetry {
                    acknowledged = false  // retried from the start, on a tick
                    continue
                }
                if !isRead && result.code == ReplicaErrorCode.boxAlreadyExists.rawValue && !request.noIdempotent {
                    return (0, nil)
                }
                return (result.code, nil)
            }
        }
    }

    /// What a successful read returns: the plaintext, or without the index (no BACAP
    /// decryption) the raw padded payload.
    func readPlaintext(_ plaintext: [UInt8], index: [UInt8]?) -> [UInt8] {
        guard index == nil else { return plaintext }
        let m = pigeonholeGeometry.maxPlaintextPayloadLength
        return Bytes.be32(UInt32(plaintext.count)) + plaintext + [UInt8](repeating: 0, count: m - plaintext.count)
    }
}
