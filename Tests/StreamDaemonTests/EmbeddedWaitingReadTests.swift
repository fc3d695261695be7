import KpclientdSim
import PigeonholeTransport
import StreamClient
import ThinClient
import Testing

@testable import StreamDaemon

/// How streams wait for boxes on the embedded simulator, which answers a retrying read the
/// moment its box is written.
@Suite("Waiting reads on the embedded simulator")
struct EmbeddedWaitingReadTests {
    /// Created streams park reads for their peers' first frames. On the embedded simulator those
    /// reads wait in the simulator instead of polling: before, 10 streams polled about 4,000
    /// times a second at zero latency, and 100 idle streams took 0.74 s/s of CPU.
    @Test func parkedReadsOfIdleStreamsDoNotPoll() async throws {
        let directory = TemporaryDirectory()
        var configuration = DaemonHarness.configuration(in: directory.path)
        configuration.embedded.latency = .zero
        let daemon = try await DaemonHarness.start(configuration)
        let client = try await daemon.client()
        for index in 0..<10 {
            _ = try await client.create("idle\(index)")
        }
        // Wait until every stream has parked its read-ahead on its peer's first boxes.
        let parked = 10 * configuration.stream.readAhead
        var before = try #require(await daemon.probe.embeddedKpclientdStatistics())
        for _ in 0..<300 where before.blockedReads < parked {
            try await Task.sleep(for: .milliseconds(100))
            before = try #require(await daemon.probe.embeddedKpclientdStatistics())
        }
        #expect(before.blockedReads == parked, "the streams park \(parked) reads on their peers' first boxes")
        try await Task.sleep(for: .seconds(2))
        let after = try #require(await daemon.probe.embeddedKpclientdStatistics())
        #expect(after.blockedReads == parked)
        // Re-issues come every 30 s; nothing else should reach the simulator.
        #expect(after.framesReceived - before.framesReceived < 20, "idle streams made \(after.framesReceived - before.framesReceived) requests in 2 s")
        await client.close()
        await daemon.stop()
    }

    @Test func onlyTheEmbeddedSimulatorWithoutAProfileWaitsInTheSimulator() {
        var embedded = EmbeddedConfiguration()
        let configured = PollSchedule(firstPause: 2, ahead: 3)
        #expect(KpclientdLink.waitingReads(endpoint: .embedded, embedded: embedded, poll: configured) == .reissue(every: .seconds(30)))
        embedded.profile = .testnet
        #expect(KpclientdLink.waitingReads(endpoint: .embedded, embedded: embedded, poll: configured) == .poll(configured), "a network profile has couriers: reads poll on the configured schedule")
        let real = KpclientdEndpoint.dial(.unix(path: "/run/kpclientd.sock"))
        #expect(KpclientdLink.waitingReads(endpoint: real, embedded: EmbeddedConfiguration(), poll: configured) == .poll(configured), "a real kpclientd: reads poll on the configured schedule")
    }
}
