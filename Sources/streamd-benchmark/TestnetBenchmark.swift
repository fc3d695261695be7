import KpclientdSim
import Logging
import PigeonholeTransport
import StreamCrypto
import StreamDaemon
import StreamEngine
import ThinClient

/// Benchmark 4: StreamEngine streams over Pigeonhole through kpclientd-sim with the testnet
/// profile, run `speedup` times faster than real time; every figure is in testnet time.
///
/// Both ends use their own ThinClient connection to one simulator, so they share its send ticks
/// (λP), as two streams of one streamd would.
enum TestnetBenchmark {
    struct Settings {
        var speedup = 100.0
        var idleSpeedup = 200.0
        var kibibytes = 256
        var writeLoss = 0.1
        var churn: Duration? = .seconds(600)
        var smallWrites = 60
        var smallWriteTicks = 4.0
        /// Runs only this part (goodput, latency or idle); `nil`: all.
        var only: String?
        /// The streams' largest retransmission timeout in testnet seconds (`nil`: the default 60 s).
        var maxRetransmitSeconds: Int?
        /// Each stream end's in-flight operation budget (`nil`: sized from λP by `TransportSizing`;
        /// 1024: the engine's default, no budget).
        var operationBudget: Int?
        /// The thin clients' `maxDaemonQueueDelay` in testnet seconds (`nil`: none, kpclientd's
        /// queue of 16 is kept full).
        var queueDelaySeconds: Int? = 4
        /// The waiting reads' `PollSchedule.ahead` (`nil`: streamd's default, 2; `Int.max`: no frontier).
        var pollAhead: Int?
        /// The streams' `sendWindow`, `readAhead` and `ackDelay` (testnet seconds); `nil`: the
        /// engine's defaults.
        var sendWindow: Int?
        var readAhead: Int?
        var ackDelaySeconds: Int?

        /// The sizing of the testnet profile for the two ends sharing one simulator.
        static let sizing = TransportSizing(ticksPerSecond: KpclientdSimProfile.testnet.lambdaP * 1000, roundTrip: .seconds(1))
        var budget: Int { operationBudget ?? Self.sizing.operationsInFlight(streams: 2) }
        /// The streams' largest retransmission timeout in testnet time: `--max-rto`, else sized
        /// from λP and the poll schedule's longest pause.
        var retransmitCeiling: Duration {
            if let seconds = maxRetransmitSeconds { return .seconds(seconds) }
            return max(StreamConfiguration().maxRetransmitTimeout, Self.sizing.retransmitTimeoutCeiling(longestPoll: pollSchedule.longest))
        }
        /// The waiting reads' schedule in testnet time: streamd's (`[poll]`), with the options applied.
        var pollSchedule: PollSchedule {
            var schedule = TransportTuning().poll
            if let ahead = pollAhead { schedule.ahead = ahead }
            if let maxPause = pollMaxPause { schedule.maxPause = max(schedule.firstPause, maxPause) }
            return schedule
        }
        /// The waiting reads' longest pause in round trips (`nil`: the default 4).
        var pollMaxPause: Double?
    }

    static func run(options: Options, settings: Settings) async throws {
        print("## testnet: kpclientd-sim --profile testnet at \(format(settings.speedup, 0))× speed, write loss \(settings.writeLoss), "
            + "courier churn \(settings.churn.map { "one per \(format($0.seconds, 0)) s" } ?? "none"); figures in testnet time")
        print("streams' largest retransmission timeout: \(format(settings.retransmitCeiling.seconds, 0)) s")
        print("each end: maxOperationsInFlight \(settings.budget), thin client maxDaemonQueueDelay "
            + (settings.queueDelaySeconds.map { "\($0) s" } ?? "none (kpclientd's queue of 16 kept full)")
            + ", waiting reads poll " + (settings.pollSchedule.ahead == .max ? "every box read ahead"
                : "\(settings.pollSchedule.ahead) boxes from the frontier") + " pausing up to \(format(settings.pollSchedule.maxPause, 1)) round trips")
        let engine = StreamConfiguration()
        print("streams: sendWindow \(settings.sendWindow ?? engine.sendWindow), readAhead \(settings.readAhead ?? engine.readAhead), "
            + "ackDelay \(settings.ackDelaySeconds.map { "\($0) s" } ?? "\(engine.ackDelay)")")
        if settings.only == nil || settings.only == "goodput" {
            for direction in [Direction.dialerToListener, .listenerToDialer] {
                try await goodput(direction, settings)
            }
        }
        if settings.only == nil || settings.only == "latency" { try await latency(settings) }
        if settings.only == nil || settings.only == "idle" { try await idle(settings) }
    }

    enum Direction: CustomStringConvertible {
        case dialerToListener, listenerToDialer
        var description: String { self == .dialerToListener ? "dialer → listener" : "listener → dialer" }
    }

    // MARK: Goodput

    static func goodput(_ direction: Direction, _ settings: Settings) async throws {
        let k = settings.speedup
        let pair = try await Pair.open(settings, speedup: k, seed: direction == .dialerToListener ? 1 : 2)
        let (source, sink) = direction == .dialerToListener ? (pair.dialer, pair.listener) : (pair.listener, pair.dialer)
        let data = pattern(settings.kibibytes << 10, seed: 4)
        let before = await pair.sim.statistics()
        let start = ContinuousClock.now
        let sender = Task {
            try await source.write(data)
            try await source.sync()
        }
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        while received.count < data.count, let chunk = try await sink.read() { received += chunk }
        try await sender.value
        let testnetSeconds = (ContinuousClock.now - start).seconds * k
        guard SHA256.hash(received) == SHA256.hash(data) else { throw BenchmarkError("the \(direction) transfer differs") }
        let after = await pair.sim.statistics()
        let sourceStatus = await source.sendStatistics
        let sinkStatus = await sink.sendStatistics
        let s = Double(pair.dataBytesPerBox)
        let lambdaP = KpclientdSimProfile.testnet.lambdaP * 1000
        let bound = s * lambdaP * (1 - settings.writeLoss)
        let goodput = Double(data.count) / testnetSeconds
        let dataBoxes = (Double(data.count) / s).rounded(.up)
        let ticks = Double(after.sendTicks - before.sendTicks)
        let empty = Double(after.ticksOnEmptyBoxReads - before.ticksOnEmptyBoxReads)
        let sourceWrites = sourceStatus.firstSends + sourceStatus.timeoutResends + sourceStatus.sackResends + sourceStatus.failureResends
            + sourceStatus.deadlineResends + sourceStatus.waitedOnResends
        let sinkWrites = sinkStatus.firstSends + sinkStatus.timeoutResends + sinkStatus.sackResends + sinkStatus.failureResends
            + sinkStatus.deadlineResends + sinkStatus.waitedOnResends
        let sourceOps = await pair.operations(of: direction == .dialerToListener ? pair.dialerClient : pair.listenerClient)
        let sinkOps = await pair.operations(of: direction == .dialerToListener ? pair.listenerClient : pair.dialerClient)
        print("### goodput \(direction): \(settings.kibibytes) KiB, S = \(pair.dataBytesPerBox) B per box, λP = \(format(lambdaP, 3)) /s, p = \(settings.writeLoss)")
        print("goodput \(format(goodput, 1)) B/s vs bound S·λP·(1−p) = \(format(bound, 1)) B/s: \(format(100 * goodput / bound, 1)) % "
            + "(\(format(testnetSeconds, 0)) s for \(Int(dataBoxes)) data boxes)")
        print("send ticks \(Int(ticks)): \(format(ticks / dataBoxes, 2)) per delivered data box, of which \(format(empty / dataBoxes, 2)) "
            + "on reads of empty boxes (\(Int(empty)) = \(format(100 * empty / ticks, 1)) %); ARQ retransmissions "
            + "\(after.arqRetransmissions - before.arqRetransmissions); courier departures \(after.courierDepartures - before.courierDepartures) "
            + "stranding \(after.arqsStrandedByDepartures - before.arqsStrandedByDepartures) ARQs")
        let dialerRoundTrip = await pair.dialerClient.smoothedRoundTrip.map { format($0.seconds * k, 1) } ?? "-"
        let listenerRoundTrip = await pair.listenerClient.smoothedRoundTrip.map { format($0.seconds * k, 1) } ?? "-"
        print("thin clients' smoothed time from submission to answer: dialer \(dialerRoundTrip) s, listener \(listenerRoundTrip) s")
        print("box writes: sender \(sourceWrites) (first \(sourceStatus.firstSends), timeout \(sourceStatus.timeoutResends), "
            + "SACK \(sourceStatus.sackResends), deadline \(sourceStatus.deadlineResends)), receiver \(sinkWrites) (acks); "
            + "requests: sender \(sourceOps), receiver \(sinkOps)")
        await pair.close()
    }

    // MARK: Latency

    static func latency(_ settings: Settings) async throws {
        let k = settings.speedup
        let pair = try await Pair.open(settings, speedup: k, seed: 3)
        let size = 100
        let count = settings.smallWrites
        let interval = Duration.nanoseconds(Int64(settings.smallWriteTicks / (KpclientdSimProfile.testnet.lambdaP * 1000) / k * 1e9))
        let clock = ContinuousClock()
        let reader = Task { () throws -> [ContinuousClock.Instant] in
            var arrivals: [ContinuousClock.Instant] = []
            var buffered = 0
            while arrivals.count < count, let chunk = try await pair.listener.read() {
                buffered += chunk.count
                while buffered >= size, arrivals.count < count {
                    buffered -= size
                    arrivals.append(clock.now)
                }
            }
            return arrivals
        }
        var departures: [ContinuousClock.Instant] = []
        var next = clock.now
        for number in 0..<count {
            try await clock.sleep(until: next)
            departures.append(clock.now)
            try await pair.dialer.write(pattern(size, seed: UInt8(truncatingIfNeeded: number)))
            next = next.advanced(by: interval)
        }
        let arrivals = try await reader.value
        let latencies = zip(departures, arrivals).map { ($1 - $0).seconds * k }.sorted()
        func percentile(_ q: Double) -> Double { latencies[min(latencies.count - 1, Int((Double(latencies.count) * q).rounded(.up)) - 1)] }
        print("### latency: \(count) writes of \(size) B, one every \(format(settings.smallWriteTicks, 0)) ticks (\(format(interval.seconds * k, 1)) s)")
        print("app-to-app latency p50 \(format(percentile(0.5), 1)) s, p99 \(format(percentile(0.99), 1)) s, max \(format(latencies.last ?? 0, 1)) s "
            + "(mean round trip 1 s, one tick per \(format(1 / (KpclientdSimProfile.testnet.lambdaP * 1000), 1)) s)")
        await pair.close()
    }

    // MARK: Idle

    static func idle(_ settings: Settings) async throws {
        let k = settings.idleSpeedup
        var idleSettings = settings
        idleSettings.churn = nil
        let pair = try await Pair.open(idleSettings, speedup: k, seed: 5)
        // One exchange, then let both ends go idle (idleAfter is 30 s).
        try await pair.dialer.write(Array("hello".utf8))
        _ = try await pair.listener.read()
        try await Task.sleep(for: .nanoseconds(Int64(60 / k * 1e9)))
        let before = await pair.sim.statistics()
        let dialerBefore = await pair.dialerClient.operationStatistics.finished
        let listenerBefore = await pair.listenerClient.operationStatistics.finished
        try await Task.sleep(for: .nanoseconds(Int64(3600 / k * 1e9)))
        let after = await pair.sim.statistics()
        let dialerRequests = await pair.dialerClient.operationStatistics.finished - dialerBefore
        let listenerRequests = await pair.listenerClient.operationStatistics.finished - listenerBefore
        print("### idle: one stream pair idle for a testnet hour (at \(format(k, 0))× speed)")
        print("requests per hour: dialer \(dialerRequests), listener \(listenerRequests); send ticks \(after.sendTicks - before.sendTicks) "
            + "(\(after.ticksOnEmptyBoxReads - before.ticksOnEmptyBoxReads) on empty boxes) of \(Int(3600 * KpclientdSimProfile.testnet.lambdaP * 1000)) available")
        await pair.close()
    }

    // MARK: Setup

    /// A simulator and one stream with its two ends on separate thin clients.
    struct Pair {
        let sim: KpclientdSimulator
        let dialerClient: ThinClient
        let listenerClient: ThinClient
        let dialer: StreamEngine.Stream
        let listener: StreamEngine.Stream
        let dataBytesPerBox: Int

        static func open(_ settings: Settings, speedup k: Double, seed: UInt64) async throws -> Pair {
            var simConfiguration = KpclientdSimConfiguration()
            simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
            KpclientdSimProfile.testnet.apply(to: &simConfiguration, speedup: k)
            simConfiguration.courierChurnInterval = settings.churn.map { scaled($0, k) }
            simConfiguration.writeLossProbability = settings.writeLoss
            simConfiguration.seed = seed
            simConfiguration.logger.logLevel = .error
            let sim = try await KpclientdSimulator.start(simConfiguration)
            guard case .tcp(let host, let port) = sim.listenAddress else { throw BenchmarkError("the simulator is not on TCP") }
            let dial = DialAddress.tcp(host: host, port: port, network: .tcp)
            let dialerClient = try await client(dial, k, queueDelay: settings.queueDelaySeconds)
            let listenerClient = try await client(dial, k, queueDelay: settings.queueDelaySeconds)
            let transport = transportConfiguration(k, settings)
            var configuration = streamConfiguration(k)
            configuration.maxOperationsInFlight = settings.budget
            if let window = settings.sendWindow { configuration.sendWindow = window }
            if let readAhead = settings.readAhead { configuration.readAhead = readAhead }
            if let seconds = settings.ackDelaySeconds { configuration.ackDelay = scaled(.seconds(seconds), k) }
            configuration.maxRetransmitTimeout = max(scaled(settings.retransmitCeiling, k), configuration.initialRetransmitTimeout)
            let address = StreamAddress.generate(mode: .endToEnd)
            let listenerStore = PigeonholeBoxStore(client: listenerClient, configuration: transport)
            let dialerStore = PigeonholeBoxStore(client: dialerClient, configuration: transport)
            async let listening = StreamEngine.Stream.listen(address: address, store: listenerStore, configuration: configuration)
            let dialer = try await StreamEngine.Stream.dial(address: address, store: dialerStore, configuration: configuration)
            let listener = try await listening
            let payload = try await dialerStore.pigeonholeChannel(.writerSeed(Array(repeating: 1, count: 32))).payloadSize
            let dataBytesPerBox = Frame.dataCapacity(plaintextSize: payload - SecretBox.macLength, sackCount: 0)
            return Pair(
                sim: sim, dialerClient: dialerClient, listenerClient: listenerClient, dialer: dialer, listener: listener,
                dataBytesPerBox: dataBytesPerBox
            )
        }

        func operations(of client: ThinClient) async -> String {
            let statistics = await client.operationStatistics
            return "\(statistics.finished) (\(statistics.timedOut) at their deadline)"
        }

        func close() async {
            await dialer.halt()
            await listener.halt()
            await dialerClient.close()
            await listenerClient.close()
            await sim.shutdown()
        }
    }

    static func scaled(_ duration: Duration, _ k: Double) -> Duration {
        .nanoseconds(Int64((duration.seconds / k * 1e9).rounded()))
    }

    /// A thin client with the default deadline policy, scaled.
    static func client(_ dial: DialAddress, _ k: Double, queueDelay: Int?) async throws -> ThinClient {
        var configuration = ThinClientConfiguration(dial: dial)
        configuration.maxDaemonQueueDelay = queueDelay.map { scaled(.seconds($0), k) }
        configuration.logger.logLevel = .error
        configuration.operationDeadline = DeadlinePolicy().speededUp(by: k)
        return try await ThinClient.connect(configuration: configuration)
    }

    /// The default waiting-read schedule, its time bounds scaled.
    static func transportConfiguration(_ k: Double, _ settings: Settings) -> PigeonholeTransportConfiguration {
        var configuration = PigeonholeTransportConfiguration()
        configuration.waitingReads = .poll(settings.pollSchedule.speededUp(by: k))
        return configuration
    }

    /// The default stream configuration, every duration scaled.
    static func streamConfiguration(_ k: Double) -> StreamConfiguration {
        StreamConfiguration().speededUp(by: k)
    }
}
