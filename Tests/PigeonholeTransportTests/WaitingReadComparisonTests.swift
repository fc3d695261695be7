import Logging
import StreamEngine
import Testing

@testable import PigeonholeTransport
@testable import ThinClient

/// Compares the two ways a `.wait` read can avoid camping on a stale courier answer, in scaled
/// time against ``ModelDaemon``: send ticks spent while the box is empty, and the latency from
/// the write to the read's return.
///
/// Scale: one courier round trip (8 s on a real mixnet) is 50 ms, so λP = 1 tick/s (testnet)
/// becomes 0.16 ticks/ms and the courier's 5-minute dedup TTL becomes 1.875 s.
@Suite("waiting-read strategies", .serialized, .timeLimit(.minutes(2)))
struct WaitingReadComparisonTests {
    static let rtt = Duration.milliseconds(50)
    /// When each box is written after its read starts, in round trips.
    static let writeDelays: [Int] = [1, 3, 6, 10, 15, 20, 30, 40]

    struct Figures: CustomStringConvertible {
        var name: String
        var readTicks: Int
        var emptyReadTicks: Int
        var meanLatency: Double
        var maxLatency: Double

        var ticksPerBox: Double { Double(readTicks) / Double(WaitingReadComparisonTests.writeDelays.count) }

        var description: String {
            func oneDecimal(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }
            let ticks = oneDecimal(ticksPerBox)
            let mean = oneDecimal(meanLatency)
            let max = oneDecimal(maxLatency)
            return "\(name): \(ticks) read ticks per box (\(readTicks) total, \(emptyReadTicks) daemon retries of empty boxes), "
                + "latency after the write mean \(mean) RTT, max \(max) RTT"
        }
    }

    static func measure(_ name: String, _ strategy: WaitingReadStrategy) async throws -> Figures {
        let model = ModelDaemon(rtt: rtt, dedupTTL: .milliseconds(1875))
        var configuration = ThinClientConfiguration(dial: try await model.start())
        configuration.logger.logLevel = .error
        configuration.fallbackLambdaP = 0.16
        configuration.operationDeadline = DeadlinePolicy(
            multiplier: 3, slop: .milliseconds(50), floor: .milliseconds(500), ceiling: .seconds(5), initialRoundTrip: rtt
        )
        let client = try await ThinClient.connect(configuration: configuration)
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = strategy
        let channel = try await PigeonholeBoxStore(client: client, configuration: transport).pigeonholeChannel(.writerSeed(seed(9)))
        let latencies = try await withThrowingTaskGroup(of: Double.self) { group in
            for (number, delay) in writeDelays.enumerated() {
                group.addTask {
                    let reader = Task { try await channel.read(index: UInt64(number), mode: .wait) }
                    try await Task.sleep(for: rtt * delay)
                    await model.store(UInt64(number), box(64, UInt8(number)))
                    let written = ContinuousClock.now
                    let bytes = try await reader.value
                    #expect(bytes == box(64, UInt8(number)))
                    return (ContinuousClock.now - written) / rtt
                }
            }
            var all: [Double] = []
            for try await latency in group { all.append(latency) }
            return all
        }
        let counters = await model.counters
        await client.close()
        await model.stop()
        return Figures(
            name: name, readTicks: counters.readTicks, emptyReadTicks: counters.emptyReadTicks,
            meanLatency: latencies.reduce(0, +) / Double(latencies.count), maxLatency: latencies.max() ?? 0
        )
    }

    @Test func pollingCostsFewerTicksThanReissuingForTheSameLatency() async throws {
        func poll(_ first: Double, _ max: Double) -> WaitingReadStrategy {
            .poll(PollSchedule(firstPause: first, maxPause: max, shortest: .milliseconds(1)))
        }
        let reissue16 = try await Self.measure("re-issue every 16 RTT", .reissue(every: Self.rtt * 16))
        let reissue4 = try await Self.measure("re-issue every 4 RTT", .reissue(every: Self.rtt * 4))
        let poll16 = try await Self.measure("poll, pauses 1..16 RTT", poll(1, 16))
        let poll4 = try await Self.measure("poll, pauses 1..4 RTT", poll(1, 4))
        let poll2 = try await Self.measure("poll, pauses 2 RTT", poll(2, 2))
        let poll1 = try await Self.measure("poll, pauses 1 RTT", poll(1, 1))
        for figures in [reissue16, reissue4, poll16, poll4, poll2, poll1] {
            print("waiting-read figures: \(figures)")
        }
        // For the same latency (about 2 RTT after the write), polling spends far fewer ticks: a
        // daemon-retried read pays a tick every round trip while its box is empty, a poll only
        // when it asks.
        #expect(poll2.readTicks * 2 < reissue4.readTicks)
        #expect(poll16.maxLatency < 30)
    }
}
