import KpclientdSim
import Logging
import StreamCrypto
import StreamEngine
import StreamEngineTesting
import Testing

@testable import PigeonholeTransport
@testable import ThinClient

/// The end-to-end proof of issue 8: two StreamEngine ends, each with its own ThinClient and
/// PigeonholeTransport, move 256 KiB through kpclientd-sim under the testnet profile (λP = 1/s,
/// two couriers, 20 s resend slop, 5-minute courier dedup cache), with couriers leaving and 10 %
/// of writes lost, all `speedup` times faster than real time.
@Suite("Transfer under the testnet profile", .timeLimit(.minutes(3)))
struct TestnetTransferTests {
    /// Testnet seconds per wall second.
    static let speedup = 100.0
    /// How late (wall time) a request may end after its deadline: the deadline timer's scheduling delay.
    static let deadlineSlack = Duration.milliseconds(250)

    @Test func a256KiBTransferSurvivesChurnAndLossAndNoRequestOutlivesItsDeadline() async throws {
        let k = Self.speedup
        var simConfiguration = KpclientdSimConfiguration()
        simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
        KpclientdSimProfile.testnet.apply(to: &simConfiguration, speedup: k)
        // A courier leaves about every 5 testnet minutes: ARQs bound to it hang until cancelled.
        simConfiguration.courierChurnInterval = TestnetScale.scaled(.seconds(300), k)
        simConfiguration.writeLossProbability = 0.1
        simConfiguration.seed = 20_261_129
        simConfiguration.logger.logLevel = .error
        let sim = try await KpclientdSimulator.start(simConfiguration)
        guard case .tcp(let host, let port) = sim.listenAddress else { fatalError("TCP expected") }
        let dial = DialAddress.tcp(host: host, port: port, network: .tcp)
        let listenerClient = try await TestnetScale.client(dial, speedup: k)
        let dialerClient = try await TestnetScale.client(dial, speedup: k)
        let transport = TestnetScale.transport(speedup: k)
        let listenerStore = PigeonholeBoxStore(client: listenerClient, configuration: transport)
        let dialerStore = PigeonholeBoxStore(client: dialerClient, configuration: transport)
        let configuration = TestnetScale.stream(speedup: k)

        // The departed-courier gauge, sampled while the transfer runs.
        let sampler = Task {
            var most = 0
            while !Task.isCancelled {
                most = max(most, await sim.statistics().arqsOnDepartedCouriers)
                try? await Task.sleep(for: .milliseconds(5))
            }
            return most
        }

        let start = ContinuousClock.now
        let pair = try await StreamPair.open(listenerStore: listenerStore, dialerStore: dialerStore, configuration: configuration)
        let (listener, dialer) = (pair.listener, pair.dialer)
        let data = StreamPair.data(count: 256 << 10, seed: 8)
        let received = try await pair.sendFromDialer(data)
        let elapsed = ContinuousClock.now - start
        sampler.cancel()
        let mostHanging = await sampler.value

        #expect(received.count == data.count)
        #expect(SHA256.hash(received) == SHA256.hash(data), "byte-identical")

        let dialerStatus = await dialer.sendStatistics
        let listenerStatus = await listener.sendStatistics
        await dialer.halt()
        await listener.halt()
        let statistics = await sim.statistics()
        let dialerOperations = await dialerClient.operationStatistics
        let listenerOperations = await listenerClient.operationStatistics
        let testnetSeconds = (TestnetScale.seconds(elapsed) * k).rounded()
        print(
            "testnet transfer: 256 KiB in \(elapsed) wall (\(testnetSeconds) s testnet); sim: \(statistics.sendTicks) ticks, "
                + "\(statistics.ticksOnEmptyBoxReads) on empty boxes, \(statistics.arqRetransmissions) ARQ retransmissions, "
                + "\(statistics.courierDepartures) courier departures stranding \(statistics.arqsStrandedByDepartures) ARQs "
                + "(at most \(mostHanging) hanging at once); dialer requests \(dialerOperations), listener requests "
                + "\(listenerOperations); engine deadline resends \(dialerStatus.deadlineResends) + \(listenerStatus.deadlineResends)"
        )

        // Sized to λP, frames are not resent before their first copy could be acknowledged: fewer
        // timer resends than first sends (unsized, the queues made it 474 to 362).
        #expect(TestnetScale.budget == 3)
        #expect(TestnetScale.sizing.retransmitTimeoutCeiling(longestPoll: .seconds(60)) == .seconds(272))
        #expect(dialerStatus.timeoutResends < dialerStatus.firstSends, "\(dialerStatus)")

        // Churn really stranded ARQs, so the transfer proves recovery from them.
        #expect(statistics.courierDepartures > 0)
        #expect(statistics.arqsStrandedByDepartures > 0)
        #expect(mostHanging > 0, "arqsOnDepartedCouriers was positive while the transfer ran")
        #expect(dialerOperations.timedOut + listenerOperations.timedOut > 0, "the stranded ARQs were given up at their deadlines")
        // No start_resending request waited past its deadline (beyond the timer's scheduling delay).
        for operations in [dialerOperations, listenerOperations] {
            #expect(operations.finished > 0)
            #expect(operations.withDeadline == operations.finished, "every request had a deadline")
            #expect(operations.worstOverrun <= Self.deadlineSlack, "worst overrun \(operations.worstOverrun)")
            #expect(operations.longestOutstanding <= operations.longestDeadline + Self.deadlineSlack)
        }

        // Every hung ARQ was cancelled by its client (the halted streams' reads and writes
        // cancel their requests at the daemon): none is left on a departed courier. Checked
        // before the clients close, since a session whose connection drops before kpclientd
        // reads its thin_close keeps its ARQs for the grace period.
        try await waitUntil { await sim.statistics().arqsOnDepartedCouriers == 0 }
        await listenerClient.close()
        await dialerClient.close()
        await sim.shutdown()
    }

    private func waitUntil(_ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !(await condition()) {
            guard ContinuousClock.now < deadline else {
                Issue.record("condition not met within 10 s")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// The streamd defaults for a real network, with every duration divided by a speedup.
enum TestnetScale {
    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func scaled(_ duration: Duration, _ speedup: Double) -> Duration {
        .nanoseconds(Int64((seconds(duration) / speedup * 1e9).rounded()))
    }

    /// A thin client with the default deadline policy, scaled.
    static func client(_ dial: DialAddress, speedup k: Double) async throws -> ThinClient {
        var configuration = ThinClientConfiguration(dial: dial)
        configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(250))
        configuration.logger.logLevel = .error
        configuration.operationDeadline = DeadlinePolicy().speededUp(by: k)
        // streamd's default: kpclientd's queue holds what λP sends in 4 s.
        configuration.maxDaemonQueueDelay = scaled(.seconds(4), k)
        return try await ThinClient.connect(configuration: configuration)
    }

    /// The default waiting-read schedule, its time bounds scaled.
    static func transport(speedup k: Double) -> PigeonholeTransportConfiguration {
        var configuration = PigeonholeTransportConfiguration()
        configuration.waitingReads = .poll(PollSchedule().speededUp(by: k))
        return configuration
    }

    /// The default stream configuration sized to the testnet's λP (the operation budget for the
    /// two ends that share it, the retransmission ceiling), every duration scaled.
    static func stream(speedup k: Double) -> StreamConfiguration {
        var configuration = StreamConfiguration()
        configuration.maxOperationsInFlight = budget
        configuration.maxRetransmitTimeout = sizing.retransmitTimeoutCeiling(longestPoll: PollSchedule().longest)
        return configuration.speededUp(by: k)
    }

    /// The testnet's λP = 1/s and 1 s round trips.
    static let sizing = TransportSizing(ticksPerSecond: KpclientdSimProfile.testnet.lambdaP * 1000, roundTrip: .seconds(1))
    /// Each end's in-flight operation budget, for the two streams that share λP.
    static let budget = sizing.operationsInFlight(streams: 2)
}
