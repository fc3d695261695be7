import KpclientdSim
import Logging
import PigeonholeTransport
import StreamEngine
import Testing
import ThinClient

@testable import StreamDaemon

#if canImport(Glibc)
import Glibc
#endif

/// `DaemonConfiguration` defaults, the TOML loader, flags, and the errors they give.
@Suite struct ConfigurationTests {
    /// The repository root, from this file's path (Tests/StreamDaemonTests/ConfigurationTests.swift).
    static let repositoryRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// Writes `text` to a new file in `directory` and returns its path.
    static func write(_ text: String, named name: String = "streamd.toml", in directory: TemporaryDirectory) -> String {
        writeBytes(Array(text.utf8), named: name, in: directory)
    }

    static func writeBytes(_ bytes: [UInt8], named name: String, in directory: TemporaryDirectory) -> String {
        let path = directory.path + "/" + name
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        precondition(descriptor >= 0)
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        precondition(written == bytes.count)
        close(descriptor)
        return path
    }

    /// Loads `text` as the configuration file (with a fixed environment) and returns the error's key.
    static func errorKey(_ text: String, overrides: ConfigurationOverrides = ConfigurationOverrides()) -> String? {
        let directory = TemporaryDirectory()
        let path = write(text, in: directory)
        do {
            _ = try ConfigurationLoader.load(path: path, overrides: overrides, environment: ["HOME": "/home/u"])
            return nil
        } catch {
            return error.key
        }
    }

    // MARK: Defaults from the environment

    @Test func socketPathDefaults() {
        #expect(DaemonConfiguration.defaultSocketPath(environment: ["RUNTIME_DIRECTORY": "/run/streamd"]) == "/run/streamd/streamd.sock")
        // systemd lists several RuntimeDirectory= entries separated by colons; the first is ours.
        #expect(DaemonConfiguration.defaultSocketPath(environment: ["RUNTIME_DIRECTORY": "/run/a:/run/b"]) == "/run/a/streamd.sock")
        // RUNTIME_DIRECTORY wins over XDG_RUNTIME_DIR.
        #expect(
            DaemonConfiguration.defaultSocketPath(environment: ["RUNTIME_DIRECTORY": "/run/a", "XDG_RUNTIME_DIR": "/run/user/7"])
                == "/run/a/streamd.sock")
        #expect(DaemonConfiguration.defaultSocketPath(environment: ["XDG_RUNTIME_DIR": "/run/user/7"]) == "/run/user/7/streamd/streamd.sock")
        // Empty values count as unset.
        #expect(
            DaemonConfiguration.defaultSocketPath(environment: ["RUNTIME_DIRECTORY": "", "XDG_RUNTIME_DIR": "/x"]) == "/x/streamd/streamd.sock")
        #expect(DaemonConfiguration.defaultSocketPath(environment: [:]) == "/run/user/\(getuid())/streamd/streamd.sock")
    }

    @Test func stateDirectoryDefaults() {
        #expect(DaemonConfiguration.defaultStateDirectory(environment: ["STATE_DIRECTORY": "/var/lib/streamd"]) == "/var/lib/streamd")
        #expect(DaemonConfiguration.defaultStateDirectory(environment: ["STATE_DIRECTORY": "/var/lib/a:/var/lib/b"]) == "/var/lib/a")
        #expect(
            DaemonConfiguration.defaultStateDirectory(environment: ["STATE_DIRECTORY": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h"]) == "/s")
        #expect(DaemonConfiguration.defaultStateDirectory(environment: ["XDG_STATE_HOME": "/x", "HOME": "/h"]) == "/x/streamd")
        #expect(DaemonConfiguration.defaultStateDirectory(environment: ["XDG_STATE_HOME": "", "HOME": "/h"]) == "/h/.local/state/streamd")
        #expect(DaemonConfiguration.defaultStateDirectory(environment: ["HOME": "/home/u"]) == "/home/u/.local/state/streamd")
        let configuration = DaemonConfiguration(environment: ["STATE_DIRECTORY": "/s", "RUNTIME_DIRECTORY": "/r"])
        #expect(configuration.stateDirectory == "/s")
        #expect(configuration.socketPath == "/r/streamd.sock")
        #expect(configuration.kpclientd == .embedded)
        #expect(configuration.logLevel == .info)
    }

    // MARK: The example file

    @Test func theExampleFileSetsEveryKnownKeyAndValidates() throws {
        let path = Self.repositoryRoot + "/Config/streamd.toml"
        let configuration = try ConfigurationLoader.load(path: path, overrides: ConfigurationOverrides(), environment: [:])
        // The paths are left to the environment (systemd sets them), so the defaults apply.
        #expect(configuration.socketPath == DaemonConfiguration.defaultSocketPath(environment: [:]))
        #expect(configuration.kpclientd == .embedded)
        #expect(configuration.logLevel == .info)
        // The example states the defaults, so apart from the paths it equals a default configuration.
        let defaults = DaemonConfiguration(environment: [:])
        #expect(configuration.maxConnections == defaults.maxConnections)
        #expect(configuration.maxRequestsPerConnection == defaults.maxRequestsPerConnection)
        #expect(configuration.maxStreams == defaults.maxStreams)
        #expect(configuration.clientTimeout == defaults.clientTimeout)
        #expect(configuration.shutdownTimeout == defaults.shutdownTimeout)
        #expect(configuration.scheduler == defaults.scheduler)
        #expect(configuration.stream == defaults.stream)
        #expect(configuration.embedded == defaults.embedded)
        #expect(configuration.transport == defaults.transport)

        // Every key the loader knows appears in the example (the [Dial] keys in comments).
        let text = try #require(String(validating: readAll(path), as: UTF8.self))
        let keys = [
            "socket", "state_dir", "kpclientd", "log_level", "log_target", "max_connections", "max_requests_per_connection", "max_streams",
            "client_timeout", "shutdown_timeout", "[scheduler]", "max_in_flight", "max_in_flight_reads", "idle_polls_per_minute",
            "[stream]", "send_window", "read_ahead", "max_write_buffer", "max_read_buffer", "max_idle_poll_interval", "[embedded]",
            "quiet_frame_copies", "quiet_parallel_reads",
            "latency", "write_loss", "box_size", "profile", "[Dial.Tcp]", "[Dial.Unix]", "Address", "Network",
            "max_operations_in_flight", "max_retransmit_timeout", "[pacing]", "daemon_queue_capacity", "max_queue_delay", "fallback_lambda_p", "expected_round_trip",
            "[deadline]", "enabled", "multiplier", "slop", "floor", "ceiling", "initial_round_trip", "[poll]", "first_pause", "max_pause",
            "shortest", "longest", "ahead",
        ]
        for key in keys {
            #expect(text.contains(key), "the example lacks \(key)")
        }

        // With its commented [Dial.Tcp] block enabled instead of `kpclientd`, it still validates.
        var dialText = text.replacing("kpclientd = \"embedded\"\n", with: "")
        dialText = dialText.replacing("# [Dial.Tcp]\n# Address = \"127.0.0.1:64331\"\n", with: "[Dial.Tcp]\nAddress = \"127.0.0.1:64331\"\n")
        var dialed = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: dialText, to: &dialed)
        try dialed.validate()
        #expect(dialed.kpclientd == .dial(.tcp(host: "127.0.0.1", port: 64331, network: .tcp)))
    }

    private func readAll(_ path: String) -> [UInt8] {
        let descriptor = open(path, O_RDONLY)
        guard descriptor >= 0 else { return [] }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { break }
            bytes += chunk[..<count]
        }
        return bytes
    }

    // MARK: Precedence

    @Test func theFileOverridesDefaultsAndFlagsOverrideTheFile() throws {
        let directory = TemporaryDirectory()
        let path = Self.write(
            """
            socket = "/file/streamd.sock"
            state_dir = "/file/state"
            kpclientd = "tcp:127.0.0.1:1234"
            log_level = "debug"
            max_connections = 7
            client_timeout = "250ms"
            [stream]
            send_window = 8
            quiet_frame_copies = 0
            quiet_parallel_reads = 1
            """, in: directory)
        let environment = ["RUNTIME_DIRECTORY": "/env/run", "STATE_DIRECTORY": "/env/state"]
        let fromFile = try ConfigurationLoader.load(path: path, overrides: ConfigurationOverrides(), environment: environment)
        #expect(fromFile.socketPath == "/file/streamd.sock")
        #expect(fromFile.stateDirectory == "/file/state")
        #expect(fromFile.kpclientd == .dial(.tcp(host: "127.0.0.1", port: 1234, network: .tcp)))
        #expect(fromFile.logLevel == .debug)
        #expect(fromFile.maxConnections == 7)
        #expect(fromFile.clientTimeout == .milliseconds(250))
        #expect(fromFile.stream.sendWindow == 8)
        #expect(fromFile.streamConfiguration.quietFrameCopies == 0)
        #expect(fromFile.streamConfiguration.parallelReadsAfterQuietFrame == 1)
        // "auto": the engine's values unpaced, one copy and one read when kpclientd is paced.
        var auto = DaemonConfiguration(environment: [:])
        #expect(auto.streamConfiguration.quietFrameCopies == StreamConfiguration().quietFrameCopies)
        #expect(auto.streamConfiguration.parallelReadsAfterQuietFrame == StreamConfiguration().parallelReadsAfterQuietFrame)
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"testnet\"\n[stream]\nquiet_parallel_reads = \"auto\"\n", to: &auto)
        #expect(auto.streamConfiguration.quietFrameCopies == 1)
        #expect(auto.streamConfiguration.parallelReadsAfterQuietFrame == 1)
        // Untouched keys keep their defaults.
        #expect(fromFile.maxRequestsPerConnection == 64)
        #expect(fromFile.stream.readAhead == 18)

        var flags = ConfigurationOverrides()
        flags.socketPath = "/flag/streamd.sock"
        flags.stateDirectory = "/flag/state"
        flags.kpclientd = "embedded"
        flags.logLevel = "error"
        let fromFlags = try ConfigurationLoader.load(path: path, overrides: flags, environment: environment)
        #expect(fromFlags.socketPath == "/flag/streamd.sock")
        #expect(fromFlags.stateDirectory == "/flag/state")
        #expect(fromFlags.kpclientd == .embedded)
        #expect(fromFlags.logLevel == .error)
        #expect(fromFlags.maxConnections == 7)

        // A flag overrides a [Dial] table too.
        let dialPath = Self.write("[Dial.Unix]\nAddress = \"/run/kp.sock\"\n", named: "dial.toml", in: directory)
        var embedded = ConfigurationOverrides()
        embedded.kpclientd = "embedded"
        #expect(try ConfigurationLoader.load(path: dialPath, overrides: embedded, environment: environment).kpclientd == .embedded)

        // No file: the environment's defaults.
        let none = try ConfigurationLoader.load(path: nil, overrides: ConfigurationOverrides(), environment: environment)
        #expect(none.socketPath == "/env/run/streamd.sock")
        #expect(none.stateDirectory == "/env/state")
    }

    // MARK: Bad values name their key

    @Test(arguments: [
        // Wrong types.
        ("socket = 5", "socket"),
        ("max_connections = \"many\"", "max_connections"),
        ("max_streams = 1.5", "max_streams"),
        ("client_timeout = 30", "client_timeout"),
        ("scheduler = 3", "scheduler"),
        ("[scheduler]\nmax_in_flight = \"x\"", "scheduler.max_in_flight"),
        ("[embedded]\nwrite_loss = \"none\"", "embedded.write_loss"),
        ("[stream]\nsend_window = true", "stream.send_window"),
        // Out of range.
        ("socket = \"relative.sock\"", "socket"),
        ("socket = \"/\(String(repeating: "a", count: 120))\"", "socket"),
        ("state_dir = \"state\"", "state_dir"),
        ("max_connections = 0", "max_connections"),
        ("max_connections = 10001", "max_connections"),
        ("max_requests_per_connection = 4097", "max_requests_per_connection"),
        ("max_streams = 0", "max_streams"),
        ("client_timeout = \"99ms\"", "client_timeout"),
        ("shutdown_timeout = \"0s\"", "shutdown_timeout"),
        ("[scheduler]\nmax_in_flight = 0", "scheduler.max_in_flight"),
        ("[scheduler]\nmax_in_flight = 10\nmax_in_flight_reads = 11", "scheduler.max_in_flight_reads"),
        ("[scheduler]\nidle_polls_per_minute = 0", "scheduler.idle_polls_per_minute"),
        ("[stream]\nsend_window = 0", "stream.send_window"),
        ("[stream]\nread_ahead = 1", "stream.read_ahead"),
        ("[stream]\nmax_write_buffer = 100", "stream.max_write_buffer"),
        ("[stream]\nmax_read_buffer = 1073741824", "stream.max_read_buffer"),
        ("[stream]\nmax_idle_poll_interval = \"500ms\"", "stream.max_idle_poll_interval"),
        ("[stream]\nquiet_frame_copies = 5", "stream.quiet_frame_copies"),
        ("[stream]\nquiet_frame_copies = \"many\"", "stream.quiet_frame_copies"),
        ("[stream]\nquiet_parallel_reads = 0", "stream.quiet_parallel_reads"),
        ("[embedded]\nlatency = \"2m\"", "embedded.latency"),
        ("[embedded]\nwrite_loss = 0.95", "embedded.write_loss"),
        ("[embedded]\nbox_size = 100", "embedded.box_size"),
        ("[stream]\nmax_operations_in_flight = 1", "stream.max_operations_in_flight"),
        ("[stream]\nmax_retransmit_timeout = \"1s\"", "stream.max_retransmit_timeout"),
        ("[stream]\nmax_retransmit_timeout = \"2h\"", "stream.max_retransmit_timeout"),
        ("[stream]\nmax_retransmit_timeout = \"never\"", "stream.max_retransmit_timeout"),
        ("[stream]\nmax_operations_in_flight = \"many\"", "stream.max_operations_in_flight"),
        ("[pacing]\ndaemon_queue_capacity = 17", "pacing.daemon_queue_capacity"),
        ("[pacing]\ndaemon_queue_capacity = 0", "pacing.daemon_queue_capacity"),
        ("[pacing]\nmax_queue_delay = \"0s\"", "pacing.max_queue_delay"),
        ("[pacing]\nmax_queue_delay = \"soon\"", "pacing.max_queue_delay"),
        ("[pacing]\nfallback_lambda_p = 0", "pacing.fallback_lambda_p"),
        ("[pacing]\nfallback_lambda_p = \"fast\"", "pacing.fallback_lambda_p"),
        ("[pacing]\nexpected_round_trip = \"0s\"", "pacing.expected_round_trip"),
        ("[deadline]\nmultiplier = 0.5", "deadline.multiplier"),
        ("[deadline]\nmultiplier = 101", "deadline.multiplier"),
        ("[deadline]\nfloor = \"500ms\"", "deadline.floor"),
        ("[deadline]\nfloor = \"60s\"\nceiling = \"30s\"", "deadline.ceiling"),
        ("[deadline]\nslop = \"2h\"", "deadline.slop"),
        ("[deadline]\ninitial_round_trip = \"2h\"", "deadline.initial_round_trip"),
        ("[deadline]\nenabled = \"yes\"", "deadline.enabled"),
        ("[poll]\nahead = 0", "poll.ahead"),
        ("[poll]\nahead = 1025", "poll.ahead"),
        ("[poll]\nfirst_pause = -1", "poll.first_pause"),
        ("[poll]\nfirst_pause = 5\nmax_pause = 2", "poll.max_pause"),
        ("[poll]\nmultiplier = 0.5", "poll.multiplier"),
        ("[poll]\nshortest = \"0s\"", "poll.shortest"),
        ("[poll]\nshortest = \"2s\"\nlongest = \"1s\"", "poll.longest"),
        ("[poll]\nlongest = \"2h\"", "poll.longest"),
        // Unknown keys, at the top and in tables.
        ("sockets = \"/x.sock\"", "sockets"),
        ("[scheduler]\nmax_inflight = 3", "scheduler.max_inflight"),
        ("[stream]\nwindow = 3", "stream.window"),
        ("[embedded]\nloss = 0.1", "embedded.loss"),
        ("[logging]\nlevel = \"info\"", "logging"),
        ("[pacing]\nqueue = 3", "pacing.queue"),
        ("[deadline]\nfactor = 3", "deadline.factor"),
        ("[poll]\nlookahead = 3", "poll.lookahead"),
        // Bad durations.
        ("client_timeout = \"10\"", "client_timeout"),
        ("client_timeout = \"ten seconds\"", "client_timeout"),
        ("shutdown_timeout = \"-5s\"", "shutdown_timeout"),
        ("[stream]\nmax_idle_poll_interval = \"5 m\"", "stream.max_idle_poll_interval"),
        // Bad log level.
        ("log_level = \"loud\"", "log_level"),
        ("log_level = \"INFO\"", "log_level"),
        // Bad kpclientd addresses.
        ("kpclientd = \"somewhere\"", "kpclientd"),
        ("kpclientd = \"tcp:nohost\"", "kpclientd"),
        ("kpclientd = \"tcp:127.0.0.1:99999\"", "kpclientd"),
        ("kpclientd = \"unix:relative/path\"", "kpclientd"),
        // Both kpclientd and [Dial] (with either value of kpclientd).
        ("kpclientd = \"tcp:127.0.0.1:1\"\n[Dial.Tcp]\nAddress = \"127.0.0.1:2\"", "Dial"),
        ("kpclientd = \"embedded\"\n[Dial.Tcp]\nAddress = \"127.0.0.1:2\"", "Dial"),
        // A [Dial] table that is not valid thinclient.toml.
        ("[Dial.Ws]\nAddress = \"ws://x\"", "Dial"),
        ("[Dial.Tcp]\nAddress = \"127.0.0.1:1\"\n[Dial.Unix]\nAddress = \"/x\"", "Dial"),
        ("[Dial.Tcp]\nAdress = \"127.0.0.1:1\"", "Dial"),
        // Not TOML.
        ("socket = ", "(file)"),
    ])
    func aBadValueNamesItsKey(_ text: String, _ key: String) {
        #expect(Self.errorKey(text) == key, "for \(text.debugDescription)")
    }

    @Test func theEmbeddedSimulatorTakesANetworkProfile() throws {
        var configuration = DaemonConfiguration(environment: [:])
        #expect(configuration.embedded.profile == nil)
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"testnet\"\n", to: &configuration)
        #expect(configuration.embedded.profile == .testnet)
        try configuration.validate()
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"none\"\n", to: &configuration)
        #expect(configuration.embedded.profile == nil)
        let error = #expect(throws: ConfigurationError.self) {
            try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"fastnet\"\n", to: &configuration)
        }
        #expect(error?.key == "embedded.profile")
    }

    @Test func pacingDeadlineAndPollSettingsReachTheThinClientAndTheTransport() throws {
        var configuration = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(
            toml: """
                [pacing]
                daemon_queue_capacity = 8
                max_queue_delay = "10s"
                fallback_lambda_p = 0.001
                expected_round_trip = "3s"
                [deadline]
                multiplier = 2.5
                slop = "5s"
                floor = "40s"
                ceiling = "5m"
                initial_round_trip = "10s"
                [poll]
                first_pause = 0.5
                max_pause = 8
                multiplier = 3
                shortest = "100ms"
                longest = "2m"
                ahead = 3
                """, to: &configuration)
        try configuration.validate()
        var client = ThinClientConfiguration(dial: .unix(path: "/x"))
        configuration.transport.apply(to: &client)
        #expect(client.daemonQueueCapacity == 8)
        #expect(client.maxDaemonQueueDelay == .seconds(10))
        #expect(client.fallbackLambdaP == 0.001)
        #expect(
            client.operationDeadline
                == DeadlinePolicy(multiplier: 2.5, slop: .seconds(5), floor: .seconds(40), ceiling: .seconds(300), initialRoundTrip: .seconds(10)))
        #expect(
            configuration.transport.poll
                == PollSchedule(firstPause: 0.5, maxPause: 8, multiplier: 3, shortest: .milliseconds(100), longest: .seconds(120), ahead: 3))
        // A 40 s floor and a 3 s smoothed round trip: 2.5 × 3 + 5 = 12.5 s, raised to the floor.
        #expect(client.operationDeadline?.deadline(smoothedRoundTrip: .seconds(3)) == .seconds(40))

        // "none" turns the queue delay off; enabled = false the deadline.
        try ConfigurationLoader.apply(toml: "[pacing]\nmax_queue_delay = \"none\"\n[deadline]\nenabled = false\n", to: &configuration)
        try configuration.validate()
        configuration.transport.apply(to: &client)
        #expect(client.maxDaemonQueueDelay == nil)
        #expect(client.operationDeadline == nil)
        // Re-enabled, a deadline table starts from the defaults.
        try ConfigurationLoader.apply(toml: "[deadline]\nenabled = true\n", to: &configuration)
        #expect(configuration.transport.deadline == DeadlinePolicy())
    }

    @Test func eachStreamsOperationBudgetIsSizedFromLambdaP() throws {
        // The unpaced embedded simulator sends at once: no budget beyond the engine's default.
        var unpaced = DaemonConfiguration(environment: [:])
        #expect(unpaced.streamOperationBudget == StreamConfiguration().maxOperationsInFlight)
        // The testnet profile: λP = 1/s, 1 s round trips: an operation takes 2 × (1 s + 1 s) = 4 s,
        // so 4 operations keep the ticks busy, plus one for reads.
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"testnet\"\n", to: &unpaced)
        #expect(unpaced.streamOperationBudget == 5)
        #expect(unpaced.streamConfiguration.maxOperationsInFlight == 5)
        // Mainnet: λP = 0.25/s, 2 s round trips: 0.25 × 2 × (2 s + 4 s) = 3, plus one.
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"mainnet\"\n", to: &unpaced)
        #expect(unpaced.streamOperationBudget == 4)
        // A real kpclientd: the fallback λP and the expected round trip until its PKI document.
        var dialed = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: "kpclientd = \"tcp:127.0.0.1:1\"\n[pacing]\nfallback_lambda_p = 0.002\nexpected_round_trip = \"1s\"\n", to: &dialed)
        #expect(dialed.streamOperationBudget == 7)  // 2/s × 2 × (1 s + 0.5 s) = 6, plus one
        // A fixed value wins, and "auto" restores the sizing.
        try ConfigurationLoader.apply(toml: "[stream]\nmax_operations_in_flight = 12\n", to: &dialed)
        try dialed.validate()
        #expect(dialed.streamOperationBudget == 12)
        #expect(dialed.streamConfiguration.maxOperationsInFlight == 12)
        try ConfigurationLoader.apply(toml: "[stream]\nmax_operations_in_flight = \"auto\"\n", to: &dialed)
        #expect(dialed.stream.maxOperationsInFlight == nil)
        #expect(dialed.streamOperationBudget == 7)
    }

    @Test func eachStreamsRetransmissionCeilingCoversAnAcknowledgementAtLambdaP() throws {
        var configuration = DaemonConfiguration(environment: [:])
        // Unpaced: the engine's default.
        #expect(configuration.streamRetransmitCeiling == StreamConfiguration().maxRetransmitTimeout)
        #expect(configuration.streamConfiguration.maxRetransmitTimeout == .seconds(60))
        // Testnet: 2 × (4 operations of 4 s + 2 polls of up to 60 s) = 272 s.
        try ConfigurationLoader.apply(toml: "[embedded]\nprofile = \"testnet\"\n", to: &configuration)
        #expect(configuration.streamRetransmitCeiling == .seconds(272))
        #expect(configuration.streamConfiguration.maxRetransmitTimeout == .seconds(272))
        // A shorter longest poll pause shortens it: 2 × (16 s + 2 × 20 s) = 112 s.
        try ConfigurationLoader.apply(toml: "[poll]\nlongest = \"20s\"\n", to: &configuration)
        #expect(configuration.streamRetransmitCeiling == .seconds(112))
        // A fixed value wins and validates with the engine's own checks.
        try ConfigurationLoader.apply(toml: "[stream]\nmax_retransmit_timeout = \"90s\"\n", to: &configuration)
        try configuration.validate()
        #expect(configuration.streamConfiguration.maxRetransmitTimeout == .seconds(90))
        try ConfigurationLoader.apply(toml: "[stream]\nmax_retransmit_timeout = \"auto\"\n", to: &configuration)
        #expect(configuration.stream.maxRetransmitTimeout == nil)
        #expect(configuration.streamRetransmitCeiling == .seconds(112))
    }

    @Test func badFlagsNameTheirFlagKey() {
        var level = ConfigurationOverrides()
        level.logLevel = "chatty"
        #expect(Self.errorKey("", overrides: level) == "log_level")
        var kpclientd = ConfigurationOverrides()
        kpclientd.kpclientd = "ftp:x"
        #expect(Self.errorKey("", overrides: kpclientd) == "kpclientd")
        var socket = ConfigurationOverrides()
        socket.socketPath = "rel.sock"
        #expect(Self.errorKey("", overrides: socket) == "socket")
    }

    @Test func durationsParse() throws {
        #expect(try ConfigurationLoader.duration("250ms", key: "k") == .milliseconds(250))
        #expect(try ConfigurationLoader.duration("10s", key: "k") == .seconds(10))
        #expect(try ConfigurationLoader.duration("5m", key: "k") == .seconds(300))
        #expect(try ConfigurationLoader.duration("1h", key: "k") == .seconds(3600))
        #expect(try ConfigurationLoader.duration("0s", key: "k") == .zero)
        for bad in ["", "s", "10", "1.5s", "10d", "-1s", "1000001s", "ms"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { _ = try ConfigurationLoader.duration(bad, key: "k") }
        }
    }

    // MARK: [Dial] in thinclient.toml form

    @Test func aDialTableInThinClientFormSelectsKpclientd() throws {
        var tcp = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: "[Dial.Tcp]\nAddress = \"127.0.0.1:64331\"\n", to: &tcp)
        #expect(tcp.kpclientd == .dial(.tcp(host: "127.0.0.1", port: 64331, network: .tcp)))

        var tcp4 = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: "[Dial]\n[Dial.Tcp]\nAddress = \"localhost:1\"\nNetwork = \"tcp4\"\n", to: &tcp4)
        #expect(tcp4.kpclientd == .dial(.tcp(host: "localhost", port: 1, network: .tcp4)))

        var unix = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: "[Dial.Unix]\nAddress = \"/run/kpclientd.sock\"\n", to: &unix)
        #expect(unix.kpclientd == .dial(.unix(path: "/run/kpclientd.sock")))

        var abstract = DaemonConfiguration(environment: [:])
        try ConfigurationLoader.apply(toml: "[Dial.Unix]\nAddress = \"@kpclientd\"\n", to: &abstract)
        #expect(abstract.kpclientd == .dial(.abstract(name: "kpclientd")))

        // The same through the command-line forms.
        #expect(try KpclientdEndpoint(parsing: "tcp:127.0.0.1:64331") == tcp.kpclientd)
        #expect(try KpclientdEndpoint(parsing: "unix:/run/kpclientd.sock") == unix.kpclientd)
        #expect(try KpclientdEndpoint(parsing: "@kpclientd") == abstract.kpclientd)
        #expect(try KpclientdEndpoint(parsing: "unix:@kpclientd") == abstract.kpclientd)
    }

    // MARK: The file itself

    @Test func aMissingFileIsNamed() {
        let directory = TemporaryDirectory()
        let path = directory.path + "/absent.toml"
        let error = loadError(path)
        #expect(error?.key == "--config")
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("No such file") == true)
    }

    @Test func aDirectoryIsNamed() {
        let directory = TemporaryDirectory()
        let error = loadError(directory.path)
        #expect(error?.key == "--config")
        #expect(error?.message.contains(directory.path) == true)
        #expect(error?.message.contains("not a regular file") == true)
    }

    @Test func aNonUTF8FileIsNamed() {
        let directory = TemporaryDirectory()
        let path = Self.writeBytes(Array("socket = \"/a".utf8) + [0xff, 0xfe] + Array(".sock\"\n".utf8), named: "latin.toml", in: directory)
        let error = loadError(path)
        #expect(error?.key == "--config")
        #expect(error?.message.contains(path) == true)
        #expect(error?.message.contains("UTF-8") == true)
    }

    @Test func anOversizedFileIsRefused() {
        let directory = TemporaryDirectory()
        let path = Self.writeBytes([UInt8](repeating: UInt8(ascii: "#"), count: ConfigurationLoader.maxFileSize + 1), named: "big.toml", in: directory)
        let error = loadError(path)
        #expect(error?.key == "--config")
        #expect(error?.message.contains("larger than") == true)
    }

    private func loadError(_ path: String) -> ConfigurationError? {
        do {
            _ = try ConfigurationLoader.load(path: path, overrides: ConfigurationOverrides(), environment: ["HOME": "/h"])
            return nil
        } catch {
            return error
        }
    }
}
