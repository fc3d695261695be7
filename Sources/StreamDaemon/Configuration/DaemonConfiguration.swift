import KpclientdSim
import Logging
import StreamEngine
import ThinClient

/// Everything streamd can be told: where it listens, where it keeps state, which kpclientd it
/// uses, and the bounds it keeps.
///
/// Values come from the defaults, then the TOML file (`--config`), then command-line flags;
/// ``ConfigurationLoader`` merges them and ``validate()`` checks the result.
public struct DaemonConfiguration: Sendable {
    /// The app socket's path.
    public var socketPath: String
    /// The directory holding the database (and, for the embedded kpclientd, its box store).
    public var stateDirectory: String
    /// The kpclientd to use.
    public var kpclientd: KpclientdEndpoint = .embedded
    /// The minimum log level.
    public var logLevel: Logger.Level = .info
    /// Where the log goes: the journal, standard error, or the journal when standard error is
    /// connected to it (`auto`).
    public var logTarget: LogTargetSetting = .auto

    /// How many app connections may be open at once.
    public var maxConnections: Int = 128
    /// How many requests one app connection may have in flight at once.
    public var maxRequestsPerConnection: Int = 64
    /// How long a connection may take to complete `hello`, or to finish a frame it started.
    public var clientTimeout: Duration = .seconds(30)
    /// How long a graceful shutdown may take before streamd exits anyway.
    public var shutdownTimeout: Duration = .seconds(10)
    /// The most streams the daemon keeps.
    public var maxStreams: Int = 100_000

    /// How the daemon shares kpclientd between streams.
    public var scheduler = SchedulerConfiguration()
    /// The tuning of every stream.
    public var stream = StreamTuning()
    /// The embedded simulated kpclientd.
    public var embedded = EmbeddedConfiguration()
    /// Pacing, deadlines and polling of requests to kpclientd.
    public var transport = TransportTuning()

    /// Creates a configuration with the default paths for this environment.
    public init(environment: [String: String]) {
        socketPath = Self.defaultSocketPath(environment: environment)
        stateDirectory = Self.defaultStateDirectory(environment: environment)
    }

    /// `$RUNTIME_DIRECTORY/streamd.sock`, else `$XDG_RUNTIME_DIR/streamd/streamd.sock`, else
    /// `/run/user/UID/streamd/streamd.sock`.
    public static func defaultSocketPath(environment: [String: String]) -> String {
        if let runtime = nonEmpty(environment["RUNTIME_DIRECTORY"]) {
            // systemd may list several directories separated by colons; the first is ours.
            return firstPath(runtime) + "/streamd.sock"
        }
        if let xdg = nonEmpty(environment["XDG_RUNTIME_DIR"]) {
            return xdg + "/streamd/streamd.sock"
        }
        return "/run/user/\(currentUserID())/streamd/streamd.sock"
    }

    /// `$STATE_DIRECTORY`, else `$XDG_STATE_HOME/streamd`, else `~/.local/state/streamd`.
    public static func defaultStateDirectory(environment: [String: String]) -> String {
        if let state = nonEmpty(environment["STATE_DIRECTORY"]) { return firstPath(state) }
        if let xdg = nonEmpty(environment["XDG_STATE_HOME"]) { return xdg + "/streamd" }
        let home = nonEmpty(environment["HOME"]) ?? "/"
        return home + "/.local/state/streamd"
    }

    private static func nonEmpty(_ value: String?) -> String? {
        guard let value, !value.isEmpty else { return nil }
        return value
    }

    private static func firstPath(_ list: String) -> String {
        String(list.split(separator: ":", maxSplits: 1).first ?? Substring(list))
    }

    /// Checks every value, naming the key of the first bad one.
    public func validate() throws(ConfigurationError) {
        func check(_ condition: Bool, _ key: String, _ why: String) throws(ConfigurationError) {
            if !condition { throw ConfigurationError(key: key, message: why) }
        }
        try check(socketPath.hasPrefix("/"), "socket", "must be an absolute path")
        try check(socketPath.utf8.count < 108, "socket", "is longer than a Unix socket path may be (107 bytes)")
        try check(stateDirectory.hasPrefix("/"), "state_dir", "must be an absolute path")
        try check((1...10_000).contains(maxConnections), "max_connections", "must be between 1 and 10000")
        try check((1...4096).contains(maxRequestsPerConnection), "max_requests_per_connection", "must be between 1 and 4096")
        try check(clientTimeout >= .milliseconds(100), "client_timeout", "must be at least 100ms")
        try check(shutdownTimeout >= .milliseconds(100), "shutdown_timeout", "must be at least 100ms")
        try check((1...1_000_000).contains(maxStreams), "max_streams", "must be between 1 and 1000000")
        try scheduler.validate()
        try stream.validate()
        try embedded.validate()
        try transport.validate()
    }
}

/// The `log_target` setting.
public enum LogTargetSetting: String, Sendable, Hashable, CaseIterable {
    /// The journal when `$JOURNAL_STREAM` names standard error (a systemd service), else standard error.
    case auto
    /// Native journal entries.
    case journal
    /// Plain lines on standard error.
    case stderr

    /// Parses `auto`, `journal` or `stderr`.
    public init(parsing text: String, key: String) throws(ConfigurationError) {
        guard let value = Self(rawValue: text) else {
            throw ConfigurationError(key: key, message: "must be auto, journal or stderr (got \"\(text.prefix(40))\")")
        }
        self = value
    }
}

/// How the daemon shares its one kpclientd connection between streams.
public struct SchedulerConfiguration: Sendable, Hashable {
    /// The most transport operations in flight at once, for all streams together.
    ///
    /// kpclientd itself does not bound operations in flight (its queue bounds only requests not
    /// yet sent), and a read of a box not yet written stays in flight until the box is written,
    /// so this is large.
    public var maxInFlight: Int = 1024
    /// Of those, the most that may be reads (so writes always find room).
    public var maxInFlightReads: Int = 768
    /// The idle-poll budget: polls of idle streams per minute, for the whole daemon.
    public var idlePollsPerMinute: Int = 600

    /// Creates the defaults.
    public init() {}

    func validate() throws(ConfigurationError) {
        guard (1...65_536).contains(maxInFlight) else {
            throw ConfigurationError(key: "scheduler.max_in_flight", message: "must be between 1 and 65536")
        }
        guard (1...maxInFlight).contains(maxInFlightReads) else {
            throw ConfigurationError(key: "scheduler.max_in_flight_reads", message: "must be between 1 and scheduler.max_in_flight (\(maxInFlight))")
        }
        guard (1...1_000_000).contains(idlePollsPerMinute) else {
            throw ConfigurationError(key: "scheduler.idle_polls_per_minute", message: "must be between 1 and 1000000")
        }
    }
}

/// The tuning shared by every stream the daemon runs.
public struct StreamTuning: Sendable, Hashable {
    /// Frames in flight per stream.
    public var sendWindow: Int = 16
    /// Boxes read ahead per stream.
    public var readAhead: Int = 18
    /// Bytes an app may have written that are not yet in frames, per stream.
    public var maxWriteBuffer: Int = 256 * 1024
    /// Received bytes an app has not consumed yet, per stream.
    public var maxReadBuffer: Int = 256 * 1024
    /// The longest time between polls of an idle stream.
    public var maxIdlePollInterval: Duration = .seconds(300)
    /// Extra copies of a quiet stream's newest frame, written with its first write (0...4;
    /// 0 also stops flagging frames quiet); `nil` (`"auto"`): see
    /// ``DaemonConfiguration/streamQuietTradeOff``.
    public var quietFrameCopies: Int?
    /// Reads kept at once on the peer's next box after a quiet frame (1...8); `nil` (`"auto"`):
    /// see ``DaemonConfiguration/streamQuietTradeOff``.
    public var quietParallelReads: Int?
    /// Transport operations in flight per stream; `nil` (`"auto"`): sized from λP, see
    /// ``DaemonConfiguration/streamOperationBudget``.
    public var maxOperationsInFlight: Int?
    /// The largest retransmission timeout per stream; `nil` (`"auto"`): sized from λP, see
    /// ``DaemonConfiguration/streamRetransmitCeiling``.
    public var maxRetransmitTimeout: Duration?

    /// Creates the defaults.
    public init() {}

    /// The engine configuration these values give.
    public var engineConfiguration: StreamConfiguration {
        var configuration = StreamConfiguration()
        configuration.sendWindow = sendWindow
        configuration.readAhead = readAhead
        configuration.maxWriteBuffer = maxWriteBuffer
        configuration.maxReadBuffer = maxReadBuffer
        configuration.maxIdlePollInterval = maxIdlePollInterval
        if let quietFrameCopies { configuration.quietFrameCopies = quietFrameCopies }
        if let quietParallelReads { configuration.parallelReadsAfterQuietFrame = quietParallelReads }
        if let maxOperationsInFlight { configuration.maxOperationsInFlight = maxOperationsInFlight }
        if let maxRetransmitTimeout { configuration.maxRetransmitTimeout = maxRetransmitTimeout }
        return configuration
    }

    func validate() throws(ConfigurationError) {
        guard (1...256).contains(sendWindow) else { throw ConfigurationError(key: "stream.send_window", message: "must be between 1 and 256") }
        guard (2...256).contains(readAhead) else { throw ConfigurationError(key: "stream.read_ahead", message: "must be between 2 and 256") }
        guard (4096...(64 << 20)).contains(maxWriteBuffer) else {
            throw ConfigurationError(key: "stream.max_write_buffer", message: "must be between 4096 and 67108864")
        }
        guard (4096...(64 << 20)).contains(maxReadBuffer) else {
            throw ConfigurationError(key: "stream.max_read_buffer", message: "must be between 4096 and 67108864")
        }
        if let quietFrameCopies, !(0...4).contains(quietFrameCopies) {
            throw ConfigurationError(key: "stream.quiet_frame_copies", message: "must be \"auto\" or between 0 and 4")
        }
        if let quietParallelReads, !(1...8).contains(quietParallelReads) {
            throw ConfigurationError(key: "stream.quiet_parallel_reads", message: "must be \"auto\" or between 1 and 8")
        }
        guard maxIdlePollInterval >= .seconds(1) else {
            throw ConfigurationError(key: "stream.max_idle_poll_interval", message: "must be at least 1s")
        }
        if let maxRetransmitTimeout, !(maxRetransmitTimeout >= .seconds(3) && maxRetransmitTimeout <= .seconds(3600)) {
            throw ConfigurationError(key: "stream.max_retransmit_timeout", message: "must be \"auto\" or between 3s and 1h")
        }
        if let maxOperationsInFlight, !(2...65_536).contains(maxOperationsInFlight) {
            throw ConfigurationError(key: "stream.max_operations_in_flight", message: "must be \"auto\" or between 2 and 65536")
        }
        do {
            try engineConfiguration.validate()
        } catch {
            throw ConfigurationError(key: "stream", message: error.message)
        }
    }
}

/// The simulated kpclientd that streamd runs in process when no real one is configured.
public struct EmbeddedConfiguration: Sendable, Hashable {
    /// Mean latency of each mixnet operation.
    public var latency: Duration = .milliseconds(20)
    /// Probability that a box write is acknowledged but lost.
    public var writeLoss: Double = 0
    /// The box size (Pigeonhole's `MaxPlaintextPayloadLength`).
    public var boxSize: Int = 1549
    /// A realistic network model (paced sends, courier dedup cache, box lifetime), or `nil`
    /// (the default) for the unpaced simulator. A profile sets its own round trip: ``latency``
    /// is then ignored.
    public var profile: KpclientdSimProfile?

    /// Creates the defaults.
    public init() {}

    func validate() throws(ConfigurationError) {
        guard latency >= .zero, latency <= .seconds(60) else {
            throw ConfigurationError(key: "embedded.latency", message: "must be between 0s and 60s")
        }
        guard (0...0.9).contains(writeLoss) else { throw ConfigurationError(key: "embedded.write_loss", message: "must be between 0 and 0.9") }
        guard (256...65_536).contains(boxSize) else { throw ConfigurationError(key: "embedded.box_size", message: "must be between 256 and 65536") }
    }
}

/// Which kpclientd streamd talks to.
public enum KpclientdEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// A simulated kpclientd inside streamd, reached through the same thin-client code.
    case embedded
    /// A real kpclientd (or an external kpclientd-sim) at a dial address.
    case dial(DialAddress)

    /// Parses `embedded`, `tcp:HOST:PORT`, `unix:PATH` or `@name`.
    public init(parsing text: String) throws(ConfigurationError) {
        func bad(_ why: String) -> ConfigurationError { ConfigurationError(key: "kpclientd", message: why) }
        guard text.utf8.count <= 4096 else { throw bad("is too long") }
        do {
            if text == "embedded" {
                self = .embedded
            } else if text.hasPrefix("tcp:") {
                self = .dial(try DialAddress.tcp(address: String(text.dropFirst(4))))
            } else if text.hasPrefix("unix:") {
                let path = String(text.dropFirst(5))
                guard path.hasPrefix("/") || path.hasPrefix("@") else { throw bad("unix: needs an absolute path or @name") }
                self = .dial(try DialAddress.unix(address: path))
            } else if text.hasPrefix("@") {
                self = .dial(try DialAddress.unix(address: text))
            } else {
                throw bad("must be embedded, tcp:HOST:PORT, unix:PATH or @name (got \"\(text)\")")
            }
        } catch let error as ThinClientError {
            throw bad(error.message)
        } catch let error as ConfigurationError {
            throw error
        } catch {
            throw bad("\(error)")
        }
    }

    public var description: String {
        switch self {
        case .embedded: return "embedded"
        case .dial(let address): return address.description
        }
    }
}

/// A configuration value that cannot be used; the message names the key.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The configuration key (as in the TOML file) or flag at fault.
    public var key: String
    /// What is wrong with it.
    public var message: String

    /// Creates an error about `key`.
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public var description: String { "configuration: \(key): \(message)" }
}
