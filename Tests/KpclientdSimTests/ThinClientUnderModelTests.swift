import KpclientdSim
import Logging
import Testing
import ThinClient

/// The real ``ThinClient`` against the simulator's network model: ticks per operation, and a
/// read that hangs on a departed courier, cancelled and re-encrypted onto the new courier.
@Suite(.timeLimit(.minutes(2)))
struct ThinClientUnderModelTests {
    static func connect(_ sim: KpclientdSimulator) async throws -> ThinClient {
        guard case .tcp(let host, let port) = sim.listenAddress else { throw TestFailure("not TCP") }
        var configuration = ThinClientConfiguration(dial: .tcp(host: host, port: port, network: .tcp))
        configuration.logger.logLevel = .error
        return try await ThinClient.connect(configuration: configuration)
    }

    @Test func writesAndReadsCostTheirTicks() async throws {
        try await TestSupport.withSimulator(NetworkModelTests.paced(rate: 100)) { sim in
            let client = try await Self.connect(sim)
            let keys = try await client.newKeypair(seed: TestSupport.random(32))
            let write = try await client.encryptWrite(plaintext: Array("hello".utf8), writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
            _ = try await client.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
            #expect(await sim.statistics().sendTicks == 1)  // an idempotent write: done at the courier's ACK
            let read = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
            let result = try await client.startResendingEncryptedMessage(.read(read, readCapability: keys.readCapability, index: keys.firstMessageIndex))
            #expect(result.plaintext == Array("hello".utf8))
            let stats = await sim.statistics()
            #expect(stats.sendTicks == 3)  // the read: the ACK round, then the payload round
            #expect(stats.ticksOnEmptyBoxReads == 0 && stats.arqRetransmissions == 0)
            await client.close()
        }
    }

    @Test func aReadOnADepartedCourierHangsUntilCancelledAndAFreshEnvelopeCompletes() async throws {
        try await TestSupport.withSimulator(NetworkModelTests.paced(rate: 100)) { sim in
            let client = try await Self.connect(sim)
            let keys = try await client.newKeypair(seed: TestSupport.random(32))
            let stale = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
            let hung = Task {
                try await client.startResendingEncryptedMessage(.read(stale, readCapability: keys.readCapability, index: keys.firstMessageIndex))
            }
            try await TestSupport.eventually("the read to poll") { await sim.statistics().ticksOnEmptyBoxReads >= 3 }
            #expect(await sim.departCourier())  // the only courier: the read's
            let write = try await client.encryptWrite(plaintext: Array("later".utf8), writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
            let written = try await client.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
            try await TestSupport.eventually("the hung read to retransmit") { await sim.statistics().arqRetransmissions >= 2 }
            #expect(await sim.statistics().arqsOnDepartedCouriers == 1)
            try await client.cancelResendingEncryptedMessage(envelopeHash: stale.envelopeHash)
            await #expect(throws: ThinClientError.self) { _ = try await hung.value }
            let fresh = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
            let result = try await client.startResendingEncryptedMessage(.read(fresh, readCapability: keys.readCapability, index: keys.firstMessageIndex))
            #expect(result.plaintext == Array("later".utf8))
            #expect(result.courierIdentityHash == written.courierIdentityHash)
            #expect(result.courierIdentityHash != sim.echoServiceIdentityHash)  // not the departed courier
            #expect(await sim.statistics().arqsOnDepartedCouriers == 0)
            await client.close()
        }
    }

    @Test func aCancelReachesAStartStillQueuedForItsSendTick() async throws {
        // One tick per 100 s on average: the start waits in the connection's queue.
        var configuration = NetworkModelTests.paced(rate: 0.01)
        configuration.seed = 7
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try await Self.connect(sim)
            let keys = try await client.newKeypair(seed: TestSupport.random(32))
            let write = try await client.encryptWrite(plaintext: Array("queued".utf8), writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
            let started = Task { try await client.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability)) }
            try await TestSupport.eventually("the start to be queued") { await sim.statistics().queuedMixnetRequests == 1 }
            try await client.cancelResendingEncryptedMessage(envelopeHash: write.envelopeHash)
            let error = await #expect(throws: ThinClientError.self) { try await started.value }
            #expect(error?.code == .startResendingCancelled)
            // The start left the queue: it will never take a tick, nor hang on a courier that leaves.
            let statistics = await sim.statistics()
            #expect(statistics.queuedMixnetRequests == 0)
            #expect(statistics.inFlightOperations == 0)
            #expect(statistics.sendTicks == 0)
            await client.close()
        }
    }
}
