import Logging
import StreamEngine
import Testing

@testable import PigeonholeTransport
@testable import ThinClient

/// Deadlines and re-encryption against a scripted daemon whose courier can hang for ever.
@Suite("Pigeonhole deadlines", .timeLimit(.minutes(1)))
struct DeadlineTests {
    static func connect(
        _ model: ModelDaemon, deadline: DeadlinePolicy?, configure: (inout ThinClientConfiguration) -> Void = { _ in }
    ) async throws -> ThinClient {
        var configuration = ThinClientConfiguration(dial: try await model.start())
        configuration.logger.logLevel = .error
        configuration.operationDeadline = deadline
        configure(&configuration)
        return try await ThinClient.connect(configuration: configuration)
    }

    static let shortDeadline = DeadlinePolicy(
        multiplier: 3, slop: .zero, floor: .milliseconds(200), ceiling: .milliseconds(400), initialRoundTrip: .milliseconds(50)
    )

    @Test func aHungWriteTimesOutIsCancelledAndTheReissueUsesAFreshEnvelope() async throws {
        let model = ModelDaemon(rtt: .milliseconds(5), dedupTTL: .seconds(1))
        let client = try await Self.connect(model, deadline: Self.shortDeadline)
        let store = PigeonholeBoxStore(client: client)
        let channel = try await store.pigeonholeChannel(.writerSeed(seed(1)))
        #expect(channel.payloadSize == 64)
        let bytes = box(64, 1)
        await model.setHangNext(1)
        let start = ContinuousClock.now
        await expectBoxError(.timeout) { try await channel.write(index: 0, bytes: bytes) }
        #expect(ContinuousClock.now - start >= .milliseconds(200))
        while await model.counters.cancels.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        var counters = await model.counters
        #expect(counters.submittedHashes.count == 1)
        #expect(counters.cancels == counters.submittedHashes, "the hung ARQ was cancelled by its envelope hash")
        #expect(await client.outstandingMixnetRequests == 0)
        // The caller re-issues: a fresh encrypt_write, hence a new envelope, which succeeds.
        try await channel.write(index: 0, bytes: bytes)
        counters = await model.counters
        #expect(counters.submittedHashes.count == 2)
        #expect(counters.submittedHashes[1] != counters.submittedHashes[0])
        // Writing the same bytes again (a re-issue after a lost reply) is idempotent; other bytes are not.
        try await channel.write(index: 0, bytes: bytes)
        await expectBoxError(.alreadyExists) { try await channel.write(index: 0, bytes: box(64, 2)) }
        #expect(try await channel.read(index: 0, mode: .poll) == bytes)
        // Completed requests gave the client a round-trip estimate; the deadline follows it, within the floor.
        #expect(await client.smoothedRoundTrip != nil)
        let deadline = try #require(await client.currentOperationDeadline)
        #expect(deadline >= .milliseconds(200) && deadline <= .milliseconds(400))
        await client.close()
        await model.stop()
    }

    @Test func aHungReadTimesOutAndIsCancelled() async throws {
        let model = ModelDaemon(rtt: .milliseconds(5), dedupTTL: .seconds(1))
        let client = try await Self.connect(model, deadline: Self.shortDeadline)
        let channel = try await PigeonholeBoxStore(client: client).pigeonholeChannel(.writerSeed(seed(2)))
        await model.setHangNext(1)
        await expectBoxError(.timeout) { _ = try await channel.read(index: 0, mode: .wait) }
        while await model.counters.cancels.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        let counters = await model.counters
        #expect(counters.cancels == counters.submittedHashes)
        // Re-issued, the read ends normally (empty box).
        #expect(try await channel.read(index: 0, mode: .poll) == nil)
        await client.close()
        await model.stop()
    }

    @Test func withoutADeadlineAHungRequestWaits() async throws {
        let model = ModelDaemon(rtt: .milliseconds(5), dedupTTL: .seconds(1))
        let client = try await Self.connect(model, deadline: nil)
        let channel = try await PigeonholeBoxStore(client: client).pigeonholeChannel(.writerSeed(seed(3)))
        await model.setHangNext(1)
        let write = Task { try await channel.write(index: 0, bytes: box(64, 3)) }
        try await Task.sleep(for: .milliseconds(400))
        #expect(await model.counters.cancels.isEmpty)
        #expect(await client.outstandingMixnetRequests == 1)
        write.cancel()
        await expectBoxError(.cancelled) { try await write.value }
        await client.close()
        await model.stop()
    }
}
