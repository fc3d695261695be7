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

            The --state file holds every box's plaintext and the envelope key in the clear: anyone \
            who can read it reads all stored messages. It is written with mode 0600; keep it in a \
            directory of mode 0700 (a warning is logged otherwise).
            """,
        version: "kpclientd-sim 0.1.0"
    )

    @Option(help: "Listener: tcp:HOST:PORT (port 0 = ephemeral), unix:PATH, or @name (Linux abstract socket).")
    var listen: String = "tcp:127.0.0.1:64331"

    @Option(help: "Mean of the exponential latency of each mixnet round trip, e.g. 50ms, 1s.")
    var latency: String = "0"

    @Option(help: "Mixnet-path releases per second (Poisson, round-robin across connections). Unset: release at once.")
    var rate: Double?

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
        configuration.listen = try SimListenAddress(parsing: listen)
        configuration.meanLatency = try KpclientdSimConfiguration.parseDuration(latency)
        configuration.rate = rate
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
