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

    @Test func everyPollOfAWaitingReadUsesAFreshEnvelope() async throws {
        let model = ModelDaemon(rtt: .milliseconds(5), dedupTTL: .seconds(10))
        let client = try await Self.connect(model, deadline: DeadlinePolicy())
        let channel = try await PigeonholeBoxStore(client: client).pigeonholeChannel(.writerSeed(seed(4)))
        let reader = Task { try await channel.read(index: 0, mode: .wait) }
        while await model.counters.submittedHashes.count < 3 { try await Task.sleep(for: .milliseconds(2)) }
        await model.store(0, box(64, 4))
        #expect(try await reader.value == box(64, 4))
        let counters = await model.counters
        #expect(counters.submittedHashes.count >= 3)
        #expect(Set(counters.submittedHashes).count == counters.submittedHashes.count, "a fresh envelope every time")
        #expect(counters.emptyReadTicks == 0, "polls are never retried by the daemon")
        #expect(counters.cancels.isEmpty)
        await client.close()
        await model.stop()
    }

    @Test func theReissueStrategyLeavesAStaleEnvelopeOnSchedule() async throws {
        // The courier answers one envelope from the replica only 6 times (5 ms apart), then from
        // its stale cache for 10 s: a read left on it would miss a box written after 50 ms.
        let model = ModelDaemon(rtt: .milliseconds(5), dedupTTL: .seconds(10))
        let client = try await Self.connect(model, deadline: DeadlinePolicy())
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .reissue(every: .milliseconds(400))
        let channel = try await PigeonholeBoxStore(client: client, configuration: transport).pigeonholeChannel(.writerSeed(seed(5)))
        let reader = Task { try await channel.read(index: 0, mode: .wait) }
        // Once the courier has answered 6 times, the first envelope only sees its stale cache.
        while await model.counters.emptyReadTicks < 6 { try await Task.sleep(for: .milliseconds(2)) }
        #expect(await model.counters.submittedHashes.count == 1)
        await model.store(0, box(64, 5))
        #expect(try await reader.value == box(64, 5))
        let counters = await model.counters
        #expect(counters.submittedHashes.count >= 2)
        #expect(Set(counters.submittedHashes).count == counters.submittedHashes.count)
        #expect(counters.cancels.first == counters.submittedHashes.first, "the stale envelope was cancelled")
        await client.close()
        await model.stop()
    }
}
