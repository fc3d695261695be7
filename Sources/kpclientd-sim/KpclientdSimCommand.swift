import ArgumentParser
import Dispatch
import KpclientdSim
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `kpclientd-sim` command: a faithful double of the Katzenpost client daemon.
@main
struct KpclientdSimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpclientd-sim",
        abstract: "A faithful kpclientd double speaking the Katzenpost thin-client protocol.",
        discussion: """
            Serves the thin-client wire protocol (4-byte big-endian length + one CBOR map per frame) with \
            an in-memory Pigeonhole box store shared by all connections, an echo service, session resume, \
            and the ARQ and copy-command semantics of the real daemon. Prints the listen address on \
            standard output; SIGINT or SIGTERM sends shutdown_event to every client and exits.

            Realism: without --profile the simulator is UNPACED (every request goes out at once and a \
            read of an empty box wakes the moment the box is written). That is fast for tests but not \
            what a client meets on the network. --profile mainnet (λP = 0.00025/ms: one send tick per \
            4 s on average) is the realistic profile for the public network; --profile testnet \
            (λP = 0.001/ms) matches the docker testnet. A profile turns on the network model: every \
            packet, follow-up poll, retry of a read of an empty box and retransmission (after the \
            round trip plus 20 s) costs a tick; ticks are shared round-robin across connections with \
            resends first (16 queued requests and 8 resend slots per connection); couriers answer \
            from a dedup cache refreshed at most 5 times per envelope and kept 5 min; boxes expire \
            after 7 days. Other flags override the profile's values.

            The --state file holds every box's plaintext and the envelope key in the clear: anyone \
            who can read it reads all stored messages. It is written with mode 0600; keep it in a \
            directory of mode 0700 (a warning is logged otherwise).
            """,
        version: "kpclientd-sim 0.1.0"
    )

    @Option(help: "Listener: tcp:HOST:PORT (port 0 = ephemeral), unix:PATH, or @name (Linux abstract socket).")
    var listen: String = "tcp:127.0.0.1:64331"

    @Option(help: "Realistic network parameters: mainnet (λP 0.00025/ms, the realistic one) or testnet (λP 0.001/ms). Unset: unpaced.")
    var profile: String?

    @Option(help: "Run the profile's clock this many times faster (send rate × N, its durations ÷ N); ticks, retransmissions and stale answers per operation stay the same.")
    var speedup: Double?

    @Option(help: "Mean of the exponential latency of each mixnet round trip, e.g. 50ms, 1s (default 0, or the profile's).")
    var latency: String?

    @Option(help: "Mixnet-path releases per second (Poisson, round-robin across connections) without the network model: only first sends wait for a tick. Unset: release at once.")
    var rate: Double?

    @Option(name: .customLong("send-rate"), help: "Send ticks per second, λP × 1000, with the network model (every packet, poll and retransmission costs a tick).")
    var sendRate: Double?

    @Option(name: .customLong("lambda-p"), help: "λP in sends per millisecond, as in the PKI document (0.00025 mainnet, 0.001 testnet), with the network model; same as --send-rate λP×1000.")
    var lambdaP: Double?

    @Option(name: .customLong("round-trip-slop"), help: "Paced model: how long past the mean round trip an unanswered ARQ packet is retransmitted (default 20s).")
    var roundTripSlop: String?

    @Option(name: .customLong("dedup-cache-ttl"), help: "Paced model: how long a courier keeps an envelope's cached answer (default 5m).")
    var dedupCacheTTL: String?

    @Option(name: .customLong("max-redispatch"), help: "Paced model: how often a courier refreshes a cached error answer per envelope (default 5).")
    var maxRedispatch: Int?

    @Option(help: "How many couriers the PKI document lists (default 1; mainnet profile 3, testnet 2).")
    var couriers: Int?

    @Option(name: .customLong("courier-churn"), help: "Couriers leave (and are replaced) at this mean interval or rate, e.g. 10m or 6/h; ARQs on a departed courier never complete.")
    var courierChurn: String?

    @Option(name: .customLong("box-ttl"), help: "Boxes expire this long after being written and then read as BoxIDNotFound, e.g. 7d or 10s (default: never; profiles: 7 days; the real replicas keep two 7-day buckets).")
    var boxTTL: String?

    @Option(name: .customLong("write-loss"), help: "Probability in 0...1 that a write is acknowledged by the courier but never stored.")
    var writeLoss: Double = 0

    @Option(name: .customLong("disconnect-every"), help: "Drop every client connection this often (e.g. 30s); sessions stay resumable.")
    var disconnectEvery: String?

    @Option(help: """
        File in which the box store survives restarts (atomic replace; loaded and validated at start; \
        its directory must exist). It holds box plaintext and the envelope key in the clear: mode 0600, \
        keep it in a 0700 directory.
        """)
    var state: String?

    @Option(help: "Seed (unsigned integer) making keys, AppIDs, latencies, losses and nonces reproducible.")
    var seed: UInt64?

    @Option(name: .customLong("max-plaintext-payload-length"), help: "Pigeonhole MaxPlaintextPayloadLength M; the Sphinx geometry is derived (UFPL = M + 451).")
    var maxPlaintextPayloadLength: Int = 1549

    @Option(help: "How long a session whose client dropped without thin_close is kept, e.g. 30s, 10m.")
    var grace: String = "10m"

    @Flag(name: .customLong("one-key-frames"), help: "Send one-key response maps instead of the Go daemon's null-filled maps.")
    var oneKeyFrames = false

    @Flag(name: .customLong("offline"), help: "Report is_connected=false (mixnet link down) in connection_status_event.")
    var offline = false

    @Option(name: .customLong("log-level"), help: "Log level: trace, debug, info, notice, warning, error or critical (refused connections and framing errors are logged at debug).")
    var logLevel: String = "info"

    @Option(name: .customLong("max-connections"), help: "The most simultaneous client connections; more are refused.")
    var maxConnections: Int = 256

    @Option(name: .customLong("handshake-timeout"), help: "Close a connection that sends no complete frame (such as session_token) within this time, e.g. 30s.")
    var handshakeTimeout: String = "30s"

    @Option(name: .customLong("frame-timeout"), help: "Close a connection that leaves a frame incomplete for this long, e.g. 30s.")
    var frameTimeout: String = "30s"

    func makeConfiguration() throws -> KpclientdSimConfiguration {
        var configuration = KpclientdSimConfiguration()
        if let profile {
            guard let named = KpclientdSimProfile(rawValue: profile) else {
                throw SimConfigurationError("unknown profile \(profile) (want mainnet or testnet)")
            }
            if let speedup, !(speedup > 0 && speedup.isFinite) { throw SimConfigurationError("speedup must be positive") }
            named.apply(to: &configuration, speedup: speedup ?? 1)
        } else if speedup != nil {
            throw SimConfigurationError("--speedup needs --profile")
        }
        configuration.listen = try SimListenAddress(parsing: listen)
        if let latency { configuration.meanLatency = try KpclientdSimConfiguration.parseDuration(latency) }
        guard [rate, sendRate, lambdaP].compactMap({ $0 }).count <= 1 else {
            throw SimConfigurationError("give one of --rate, --send-rate or --lambda-p, not both")
        }
        if let rate {
            configuration.rate = rate
            configuration.networkModel = false
        }
        if let sendRate {
            configuration.rate = sendRate
            configuration.networkModel = true
        }
        if let lambdaP {
            configuration.rate = lambdaP * 1000
            configuration.networkModel = true
        }
        if let roundTripSlop { configuration.roundTripSlop = try KpclientdSimConfiguration.parseDuration(roundTripSlop) }
        if let dedupCacheTTL { configuration.dedupCacheTTL = try KpclientdSimConfiguration.parseDuration(dedupCacheTTL) }
        if let maxRedispatch { configuration.maxRedispatchAttempts = maxRedispatch }
        if let couriers { configuration.courierCount = couriers }
        if let courierChurn { configuration.courierChurnInterval = try KpclientdSimConfiguration.parseChurn(courierChurn) }
        if let boxTTL { configuration.boxTTL = try KpclientdSimConfiguration.parseDuration(boxTTL) }
        configuration.writeLossProbability = writeLoss
        configuration.disconnectEvery = try disconnectEvery.map { try KpclientdSimConfiguration.parseDuration($0) }
        configuration.statePath = state
        configuration.seed = seed
        configuration.maxPlaintextPayloadLength = maxPlaintextPayloadLength
        configuration.grace = try KpclientdSimConfiguration.parseDuration(grace)
        configuration.goStyleResponses = !oneKeyFrames
        configuration.isConnectedToMixnet = !offline
        configuration.maxConnections = maxConnections
        configuration.handshakeTimeout = try KpclientdSimConfiguration.parseDuration(handshakeTimeout)
        configuration.frameTimeout = try KpclientdSimConfiguration.parseDuration(frameTimeout)
        var logger = Logger(label: "kpclientd-sim")
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown log level \(logLevel) (want trace, debug, info, notice, warning, error or critical)")
        }
        logger.logLevel = level
        configuration.logger = logger
        try configuration.validate()
        return configuration
    }

    func validate() throws {
        do {
            _ = try makeConfiguration()
        } catch let error as SimConfigurationError {
            throw ValidationError(error.message)
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let configuration = try makeConfiguration()
        let (signals, continuation) = AsyncStream<Int32>.makeStream()
        var sources: [any DispatchSourceSignal] = []
        for signo in [SIGINT, SIGTERM] {
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { continuation.yield(signo) }
            source.resume()
            sources.append(source)
        }
        let sim = try await KpclientdSimulator.start(configuration)
        print("kpclientd-sim listening on \(sim.listenAddress)")
        fflush(nil)
        for await signo in signals {
            configuration.logger.info("signal received; shutting down", metadata: ["signal": "\(signo)"])
            break
        }
        await sim.shutdown()
        withExtendedLifetime(sources) {}
    }
}
