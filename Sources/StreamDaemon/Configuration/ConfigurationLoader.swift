import KpclientdSim
import Logging
import PigeonholeTransport
import TOMLKit
import ThinClient

#if canImport(Glibc)
import Glibc
#endif

/// Values given on the command line; each one that is set overrides the file.
public struct ConfigurationOverrides: Sendable {
    /// `--socket`.
    public var socketPath: String?
    /// `--state-dir`.
    public var stateDirectory: String?
    /// `--kpclientd`.
    public var kpclientd: String?
    /// `--log-level`.
    public var logLevel: String?
    /// `--log-target`.
    public var logTarget: String?

    /// Creates an empty set of overrides.
    public init() {}
}

/// Builds a ``DaemonConfiguration`` from the defaults, a TOML file and command-line overrides.
///
/// Unknown keys are errors (a typo must not be silently ignored), and every error names its key.
public enum ConfigurationLoader {
    /// The largest configuration file read.
    static let maxFileSize = 1 << 20

    /// Loads and validates the configuration.
    ///
    /// - Parameters:
    ///   - path: the TOML file, or `nil` for none.
    ///   - overrides: flags, applied after the file.
    ///   - environment: the process environment, for the default paths.
    public static func load(
        path: String?, overrides: ConfigurationOverrides, environment: [String: String]
    ) throws(ConfigurationError) -> DaemonConfiguration {
        var configuration = DaemonConfiguration(environment: environment)
        if let path {
            let text = try readFile(path)
            try apply(toml: text, to: &configuration)
        }
        if let socket = overrides.socketPath { configuration.socketPath = socket }
        if let state = overrides.stateDirectory { configuration.stateDirectory = state }
        if let kpclientd = overrides.kpclientd { configuration.kpclientd = try KpclientdEndpoint(parsing: kpclientd) }
        if let level = overrides.logLevel { configuration.logLevel = try logLevel(level, key: "log_level") }
        if let target = overrides.logTarget { configuration.logTarget = try LogTargetSetting(parsing: target, key: "log_target") }
        try configuration.validate()
        return configuration
    }

    /// Applies the keys of a TOML document to `configuration`.
    public static func apply(toml text: String, to configuration: inout DaemonConfiguration) throws(ConfigurationError) {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigurationError(key: "(file)", message: "not valid TOML at \(error.source.begin.debugDescription): \(error.description)")
        } catch {
            throw ConfigurationError(key: "(file)", message: "not valid TOML")
        }
        var reader = TableReader(table: root, prefix: "")
        if let socket = try reader.string("socket") { configuration.socketPath = socket }
        if let state = try reader.string("state_dir") { configuration.stateDirectory = state }
        if let kpclientd = try reader.string("kpclientd") { configuration.kpclientd = try KpclientdEndpoint(parsing: kpclientd) }
        if let level = try reader.string("log_level") { configuration.logLevel = try logLevel(level, key: "log_level") }
        if let target = try reader.string("log_target") { configuration.logTarget = try LogTargetSetting(parsing: target, key: "log_target") }
        if let value = try reader.int("max_connections") { configuration.maxConnections = value }
        if let value = try reader.int("max_requests_per_connection") { configuration.maxRequestsPerConnection = value }
        if let value = try reader.int("max_streams") { configuration.maxStreams = value }
        if let value = try reader.duration("client_timeout") { configuration.clientTimeout = value }
        if let value = try reader.duration("shutdown_timeout") { configuration.shutdownTimeout = value }
        if let dial = try reader.table("Dial") {
            guard root["kpclientd"] == nil else {
                throw ConfigurationError(key: "Dial", message: "give either kpclientd or a [Dial] table, not both")
            }
            let wrapper = TOMLTable()
            wrapper["Dial"] = dial.contents
            do {
                configuration.kpclientd = .dial(try DialAddress(thinClientTOML: wrapper.convert()))
            } catch {
                throw ConfigurationError(key: "Dial", message: error.message)
            }
        }
        if var scheduler = try reader.table("scheduler") {
            if let value = try scheduler.int("max_in_flight") { configuration.scheduler.maxInFlight = value }
            if let value = try scheduler.int("max_in_flight_reads") { configuration.scheduler.maxInFlightReads = value }
            if let value = try scheduler.int("idle_polls_per_minute") { configuration.scheduler.idlePollsPerMinute = value }
            try scheduler.rejectUnknown()
        }
        if var stream = try reader.table("stream") {
            if let value = try stream.int("send_window") { configuration.stream.sendWindow = value }
            if let value = try stream.int("read_ahead") { configuration.stream.readAhead = value }
            if let value = try stream.int("max_write_buffer") { configuration.stream.maxWriteBuffer = value }
            if let value = try stream.int("max_read_buffer") { configuration.stream.maxReadBuffer = value }
            if let value = try stream.duration("max_idle_poll_interval") { configuration.stream.maxIdlePollInterval = value }
            if let value = try stream.intOrWord("quiet_frame_copies", word: "auto") { configuration.stream.quietFrameCopies = value }
            if let value = try stream.intOrWord("quiet_parallel_reads", word: "auto") { configuration.stream.quietParallelReads = value }
            if let value = try stream.intOrWord("max_operations_in_flight", word: "auto") { configuration.stream.maxOperationsInFlight = value }
            if let value = try stream.durationOrWord("max_retransmit_timeout", word: "auto") { configuration.stream.maxRetransmitTimeout = value }
            try stream.rejectUnknown()
        }
        if var pacing = try reader.table("pacing") {
            if let value = try pacing.int("daemon_queue_capacity") { configuration.transport.daemonQueueCapacity = value }
            if let value = try pacing.durationOrWord("max_queue_delay", word: "none") { configuration.transport.maxQueueDelay = value }
            if let value = try pacing.double("fallback_lambda_p") { configuration.transport.fallbackLambdaP = value }
            if let value = try pacing.duration("expected_round_trip") { configuration.transport.expectedRoundTrip = value }
            try pacing.rejectUnknown()
        }
        if var deadline = try reader.table("deadline") {
            var policy = configuration.transport.deadline ?? DeadlinePolicy()
            if let value = try deadline.double("multiplier") {
                guard value >= 1 else { throw ConfigurationError(key: "deadline.multiplier", message: "must be between 1 and 100") }
                policy.multiplier = value
            }
            if let value = try deadline.duration("slop") { policy.slop = value }
            if let value = try deadline.duration("floor") { policy.floor = value }
            if let value = try deadline.duration("ceiling") { policy.ceiling = value }
            if let value = try deadline.duration("initial_round_trip") { policy.initialRoundTrip = value }
            let enabled = try deadline.bool("enabled") ?? (configuration.transport.deadline != nil)
            configuration.transport.deadline = enabled ? policy : nil
            try deadline.rejectUnknown()
        }
        if var poll = try reader.table("poll") {
            var schedule = configuration.transport.poll
            func pauses(_ name: String) throws(ConfigurationError) -> Double? {
                guard let value = try poll.double(name) else { return nil }
                guard value.isFinite, value >= 0 else { throw ConfigurationError(key: "poll." + name, message: "must not be negative") }
                return value
            }
            if let value = try pauses("first_pause") { schedule.firstPause = value }
            if let value = try pauses("max_pause") { schedule.maxPause = value }
            if let value = try pauses("multiplier") {
                guard value >= 1 else { throw ConfigurationError(key: "poll.multiplier", message: "must be between 1 and 100") }
                schedule.multiplier = value
            }
            if let value = try poll.duration("shortest") { schedule.shortest = value }
            if let value = try poll.duration("longest") { schedule.longest = value }
            if let value = try poll.int("ahead") {
                guard value >= 1 else { throw ConfigurationError(key: "poll.ahead", message: "must be between 1 and 1024") }
                schedule.ahead = value
            }
            guard schedule.maxPause >= schedule.firstPause else {
                throw ConfigurationError(key: "poll.max_pause", message: "must be between poll.first_pause and 1000 round trips")
            }
            guard schedule.longest >= schedule.shortest else {
                throw ConfigurationError(key: "poll.longest", message: "must be between poll.shortest and 1h")
            }
            configuration.transport.poll = schedule
            try poll.rejectUnknown()
        }
        if var embedded = try reader.table("embedded") {
            if let value = try embedded.duration("latency") { configuration.embedded.latency = value }
            if let value = try embedded.double("write_loss") { configuration.embedded.writeLoss = value }
            if let value = try embedded.int("box_size") { configuration.embedded.boxSize = value }
            if let value = try embedded.string("profile") {
                switch value {
                case "none": configuration.embedded.profile = nil
                case let name:
                    guard let profile = KpclientdSimProfile(rawValue: name) else {
                        throw ConfigurationError(key: "embedded.profile", message: "must be none, testnet or mainnet (got \"\(name)\")")
                    }
                    configuration.embedded.profile = profile
                }
            }
            try embedded.rejectUnknown()
        }
        try reader.rejectUnknown()
    }

    /// Parses a log level name.
    public static func logLevel(_ text: String, key: String) throws(ConfigurationError) -> Logger.Level {
        guard let level = Logger.Level(rawValue: text) else {
            let names = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")
            throw ConfigurationError(key: key, message: "must be one of \(names) (got \"\(text.prefix(40))\")")
        }
        return level
    }

    /// Parses a duration such as `250ms`, `10s`, `5m` or `1h`.
    public static func duration(_ text: String, key: String) throws(ConfigurationError) -> Duration {
        let units: [(String, Duration)] = [("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3600))]
        for (suffix, unit) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            if let value = Int(number), value >= 0, value <= 1_000_000 { return unit * value }
        }
        throw ConfigurationError(key: key, message: "must be a duration such as 250ms, 10s, 5m or 1h (got \"\(text.prefix(40))\")")
    }

    private static func readFile(_ path: String) throws(ConfigurationError) -> String {
        func bad(_ why: String) -> ConfigurationError { ConfigurationError(key: "--config", message: "\(path): \(why)") }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else { throw bad(String(cString: strerror(errno))) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw bad(String(cString: strerror(errno))) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw bad("is not a regular file") }
        guard info.st_size <= maxFileSize else { throw bad("is larger than \(maxFileSize) bytes") }
        var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress! + filled, $0.count - filled) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { throw bad(count == 0 ? "short read" : String(cString: strerror(errno))) }
            filled += count
        }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw bad("is not UTF-8") }
        return text
    }
}

/// Reads typed keys from one TOML table and remembers which it used, so that unknown keys
/// can be reported.
struct TableReader {
    let contents: TOMLTable
    let prefix: String
    private var used: Set<String> = []

    init(table: TOMLTable, prefix: String) {
        self.contents = table
        self.prefix = prefix
    }

    private func key(_ name: String) -> String { prefix + name }

    mutating func string(_ name: String) throws(ConfigurationError) -> String? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        guard let text = value.string else { throw ConfigurationError(key: key(name), message: "must be a string") }
        return text
    }

    mutating func int(_ name: String) throws(ConfigurationError) -> Int? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        guard let number = value.int else { throw ConfigurationError(key: key(name), message: "must be an integer") }
        return number
    }

    mutating func double(_ name: String) throws(ConfigurationError) -> Double? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        if let number = value.double { return number }
        if let number = value.int { return Double(number) }
        throw ConfigurationError(key: key(name), message: "must be a number")
    }

    mutating func bool(_ name: String) throws(ConfigurationError) -> Bool? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        guard let flag = value.bool else { throw ConfigurationError(key: key(name), message: "must be true or false") }
        return flag
    }

    /// An integer, or `word` (then `.some(nil)`).
    mutating func intOrWord(_ name: String, word: String) throws(ConfigurationError) -> Int?? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        if let number = value.int { return .some(number) }
        if value.string == word { return .some(nil) }
        throw ConfigurationError(key: key(name), message: "must be an integer or \"\(word)\"")
    }

    /// A duration, or `word` (then `.some(nil)`).
    mutating func durationOrWord(_ name: String, word: String) throws(ConfigurationError) -> Duration?? {
        guard let text = try string(name) else { return nil }
        if text == word { return .some(nil) }
        return .some(try ConfigurationLoader.duration(text, key: key(name)))
    }

    mutating func duration(_ name: String) throws(ConfigurationError) -> Duration? {
        guard let text = try string(name) else { return nil }
        return try ConfigurationLoader.duration(text, key: key(name))
    }

    mutating func table(_ name: String) throws(ConfigurationError) -> TableReader? {
        used.insert(name)
        guard let value = contents[name] else { return nil }
        guard let inner = value.table else { throw ConfigurationError(key: key(name), message: "must be a table") }
        return TableReader(table: inner, prefix: key(name) + ".")
    }

    func rejectUnknown() throws(ConfigurationError) {
        for name in contents.keys.sorted() where !used.contains(name) {
            throw ConfigurationError(key: key(name), message: "is not a known setting")
        }
    }
}
