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
        // 3 and 4 are what kpclientd itself emits: InvalidRequest / InternalError, with the replica reading kept.
        #expect(map(3)?.code == .invalidRequest)
        #expect(map(3)?.namespace == .thinClient)
        #expect(map(3)?.alternativeCode == .invalidSignature)
        #expect(map(4)?.code == .internalError)
        #expect(map(4)?.alternativeCode == .databaseFailure)
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

@Suite("mixnet request limiter")
struct MixnetLimiterTests {
    /// Drives a ``MixnetLimiter`` from an actor, like ``ThinClient`` does.
    actor Harness {
        var limiter: MixnetLimiter
        var order: [Int] = []
        init(capacity: Int, maxWaiters: Int) { limiter = MixnetLimiter(capacity: capacity, maxWaiters: maxWaiters) }

        func acquire(_ tag: Int) async throws {
            if limiter.tryAcquire() {
                order.append(tag)
                return
            }
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if !limiter.enqueue(id: UInt64(tag), continuation) {
                    continuation.resume(throwing: ThinClientError(.tooManyPendingRequests, "full"))
                }
            }
            order.append(tag)
        }

        func release() { limiter.release() }
        func waiting() -> Int { limiter.waiterCount }
        func inUse() -> Int { limiter.inUse }
        func cancel(_ tag: Int) -> Bool {
            guard let continuation = limiter.removeWaiter(id: UInt64(tag)) else { return false }
            continuation.resume(throwing: CancellationError())
            return true
        }
    }

    @Test func fifoHandOffAndBoundedWaiters() async throws {
        let harness = Harness(capacity: 2, maxWaiters: 2)
        try await harness.acquire(1)
        try await harness.acquire(2)
        let third = Task { try await harness.acquire(3) }
        while await harness.waiting() < 1 { await Task.yield() }
        let fourth = Task { try await harness.acquire(4) }
        while await harness.waiting() < 2 { await Task.yield() }
        // The FIFO is full: the next request fails at once.
        await #expect(throws: ThinClientError.self) { try await harness.acquire(5) }
        await harness.release()
        try await third.value
        await harness.release()
        try await fourth.value
        #expect(await harness.order == [1, 2, 3, 4])
        #expect(await harness.inUse() == 2)
        await harness.release()
        await harness.release()
        #expect(await harness.inUse() == 0)
    }

    @Test func cancelledWaiterLeavesTheQueue() async throws {
        let harness = Harness(capacity: 1, maxWaiters: 4)
        try await harness.acquire(1)
        let second = Task { try await harness.acquire(2) }
        while await harness.waiting() < 1 { await Task.yield() }
        #expect(await harness.cancel(2))
        await #expect(throws: CancellationError.self) { try await second.value }
        #expect(await harness.waiting() == 0)
        await harness.release()
        #expect(await harness.inUse() == 0)
    }
}
