import Testing

@testable import ThinClient

@Suite("error code mapping")
struct ErrorMappingTests {
    @Test func thinClientNamespaceCoversEveryCode() {
        #expect(ThinClientError.thinClient(code: 0, context: "x") == nil)
        var seen: Set<String> = []
        for raw in UInt8(1)...32 {
            let error = ThinClientError.thinClient(code: raw, context: "x")!
            #expect(error.namespace == .thinClient)
            #expect(error.daemonErrorCode == raw)
            #expect(error.code != .unknownDaemonError)
            seen.insert(error.code.description)
        }
        #expect(seen.count == 32, "every thin-client code has its own Code")
        #expect(ThinClientError.thinClient(code: 33, context: "x")?.code == .unknownDaemonError)
        #expect(ThinClientError.thinClient(code: 3, context: "x")?.code == .invalidRequest)
        #expect(ThinClientError.thinClient(code: 10, context: "x")?.code == .serviceUnavailable)
        #expect(ThinClientError.thinClient(code: 24, context: "x")?.code == .startResendingCancelled)
        #expect(ThinClientError.thinClient(code: 26, context: "x")?.code == .copyCommandFailed)
    }

    @Test func replicaNamespaceCoversEveryCode() {
        let expected: [ThinClientError.Code] = [
            .boxIDNotFound, .invalidBoxID, .invalidSignature, .databaseFailure, .replicaInvalidPayload, .storageFull,
            .replicaInternalError, .invalidEpoch, .replicationFailed, .boxAlreadyExists, .tombstone,
        ]
        for (offset, code) in expected.enumerated() {
            let error = ThinClientError.replica(code: UInt8(offset + 1), context: "x")!
            #expect(error.code == code)
            #expect(error.namespace == .replica)
        }
        #expect(ThinClientError.replica(code: 12, context: "x")?.code == .unknownReplicaError)
    }

    @Test func startResendingReplyResolvesTheNamespaceCollision() {
        let map = { (raw: UInt8) in ThinClientError.resendingEncryptedMessage(code: raw, context: "start_resending_encrypted_message") }
        #expect(map(0) == nil)
        // Replica outcomes.
        #expect(map(1)?.code == .boxIDNotFound)
        #expect(map(1)?.namespace == .replica)
        #expect(map(10)?.code == .boxAlreadyExists)
        #expect(map(11)?.code == .tombstone)
        #expect(map(6)?.code == .storageFull)
        // 3 and 4 read as replica codes, as Go and Python read them; kpclientd's own meaning is the alternative.
        #expect(map(3)?.code == .invalidSignature)
        #expect(map(3)?.namespace == .replica)
        #expect(map(3)?.alternativeCode == .invalidRequest)
        #expect(map(4)?.code == .databaseFailure)
        #expect(map(4)?.namespace == .replica)
        #expect(map(4)?.alternativeCode == .internalError)
        #expect(map(4)?.isTransient == true)
        #expect(map(2)?.alternativeCode == nil)
        // The one classifier agrees.
        for raw in UInt8(0)...40 {
            switch StartResendingErrorCode(rawValue: raw) {
            case .success: #expect(map(raw) == nil)
            case .replica: #expect(map(raw)?.namespace == .replica)
            case .thinClient: #expect(map(raw)?.namespace == .thinClient)
            }
        }
        // Unambiguous thin-client codes.
        #expect(map(12)?.code == .courierCacheCorruption)
        #expect(map(13)?.code == .courierPropagationError)
        #expect(map(22)?.code == .mkemDecryptionFailed)
        #expect(map(23)?.code == .bacapDecryptionFailed)
        #expect(map(24)?.code == .startResendingCancelled)
        #expect(map(25)?.code == .invalidTombstoneSignature)
        #expect(map(31)?.code == .courierInvalidEnvelope)
        #expect(map(32)?.code == .courierReplicaEpochOutsideWindow)
    }

    @Test func transience() {
        #expect(ThinClientError(.connectionLost, "x").isTransient)
        #expect(ThinClientError.replica(code: 1, context: "x")!.isTransient)
        #expect(!ThinClientError.replica(code: 10, context: "x")!.isTransient)
        #expect(!ThinClientError.thinClient(code: 3, context: "x")!.isTransient)
        #expect(ThinClientError.thinClient(code: 13, context: "x")!.isTransient)
    }

    @Test func descriptionsNameTheCodeButNoSecrets() throws {
        let error = ThinClientError.replica(code: 10, context: "write")!
        #expect(error.description.contains("replica.box_already_exists"))
        #expect(error.description.contains("replica code 10"))
        let cap = try WriteCapability(bytes: [UInt8](repeating: 0xAB, count: 168))
        #expect(!"\(cap)".contains("171"))
        #expect("\(cap)" == "WriteCapability(<redacted>)")
        #expect("\(cap.readCapability)" == "ReadCapability(<redacted>)")
        #expect(cap.readCapability.bytes == Array(cap.bytes[32..<168]))
    }

    @Test func capabilityLengthsAreExact() throws {
        #expect(throws: ThinClientError.self) { try WriteCapability(bytes: [UInt8](repeating: 0, count: 167)) }
        #expect(throws: ThinClientError.self) { try ReadCapability(bytes: [UInt8](repeating: 0, count: 137)) }
        #expect(throws: ThinClientError.self) { try MessageBoxIndex(bytes: []) }
        var index = [UInt8](repeating: 0, count: 104)
        index[0] = 5
        index[7] = 1
        #expect(try MessageBoxIndex(bytes: index).counter == (1 << 56) + 5)
    }
}

@Suite("submission pacer")
struct SubmissionPacerTests {
    static let t0 = ContinuousClock.now

    @Test func theDaemonQueueBoundAndItsModelledTicks() {
        var pacer = SubmissionPacer(maxInFlight: 100, daemonQueueCapacity: 2, maxWaiters: 8, ticksPerSecond: 10, now: Self.t0)
        var admitted = pacer.tryAdmit(lane: .wait)
        #expect(admitted)
        pacer.submitted(sequence: 1)
        admitted = pacer.tryAdmit(lane: .wait)
        #expect(admitted)
        pacer.submitted(sequence: 2)
        admitted = pacer.tryAdmit(lane: .write)
        #expect(!admitted, "the daemon's queue is full")
        // A tick (100 ms at 10/s) sends the oldest.
        pacer.drain(now: Self.t0 + .milliseconds(105))
        #expect(pacer.unsentCount == 1)
        admitted = pacer.tryAdmit(lane: .write)
        #expect(admitted)
        pacer.submitted(sequence: 3)
        // An answer to 3 proves 2 was sent as well (FIFO).
        pacer.finished(answeredSequence: 3)
        #expect(pacer.unsentCount == 0)
        #expect(pacer.inFlight == 2)
        // Abandoned requests stay in the model until a tick or a later answer.
        pacer.finished(answeredSequence: nil)
        pacer.finished(answeredSequence: nil)
        #expect(pacer.inFlight == 0)
        // Idle ticks are not banked.
        pacer.drain(now: Self.t0 + .seconds(10))
        for n in 4...5 {
            admitted = pacer.tryAdmit(lane: .wait)
            #expect(admitted)
            pacer.submitted(sequence: UInt64(n))
        }
        pacer.drain(now: Self.t0 + .seconds(10) + .milliseconds(1))
        #expect(pacer.unsentCount == 2)
    }

    @Test func lanesAreServedInPriorityOrderAndTheMemoryBoundHolds() async throws {
        actor Box {
            var pacer = SubmissionPacer(maxInFlight: 3, daemonQueueCapacity: 16, maxWaiters: 3, ticksPerSecond: 1, now: .now)
            var order: [String] = []
            func admit(_ name: String, _ lane: SubmissionLane) async throws {
                if pacer.tryAdmit(lane: lane) {
                    order.append(name)
                    return
                }
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                    if !pacer.enqueue(id: UInt64(order.count + pacer.waiterCount + 100), lane: lane, continuation) {
                        continuation.resume(throwing: ThinClientError(.tooManyPendingRequests, "full"))
                    }
                }
                order.append(name)
            }
            func submit(_ sequence: UInt64) { pacer.submitted(sequence: sequence) }
            func finish(_ sequence: UInt64) {
                pacer.finished(answeredSequence: sequence)
                for waiter in pacer.admitWaiters(now: .now) { waiter.resume() }
            }
            func waiting() -> Int { pacer.waiterCount }
        }
        let box = Box()
        for (n, name) in ["r1", "r2", "r3"].enumerated() {
            try await box.admit(name, .wait)
            await box.submit(UInt64(n + 1))
        }
        let read = Task { try await box.admit("r4", .wait) }
        while await box.waiting() < 1 { await Task.yield() }
        let poll = Task { try await box.admit("p1", .poll) }
        while await box.waiting() < 2 { await Task.yield() }
        let write = Task { try await box.admit("w1", .write) }
        while await box.waiting() < 3 { await Task.yield() }
        await #expect(throws: ThinClientError.self) { try await box.admit("w2", .write) }
        await box.finish(1)
        try await write.value
        await box.finish(2)
        try await poll.value
        await box.finish(3)
        try await read.value
        #expect(await box.order == ["r1", "r2", "r3", "w1", "p1", "r4"])
    }
}
