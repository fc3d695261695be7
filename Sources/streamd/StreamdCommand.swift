import ArgumentParser
import Logging
import ServiceLifecycle
import StreamDaemon
import UnixSignals

#if canImport(Glibc)
import Glibc
#endif

/// The `streamd` command.
@main
struct StreamdCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamd",
        abstract: "Reliable, encrypted byte streams over Katzenpost Pigeonhole, served to local apps.",
        discussion: """
            With no subcommand, streamd runs the daemon (`streamd run`). Apps attach over a Unix \
            socket (see docs/IPC.md), usually through streamctl.
            """,
        version: daemonVersion,
        subcommands: [Run.self, Demo.self],
        defaultSubcommand: Run.self)
}

/// `streamd run`: the daemon.
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the daemon (the default).",
        discussion: """
            Settings come from the defaults, then --config FILE (TOML; see Config/streamd.toml), \
            then these flags. A bad value exits with status 78 and names its key.

            Exit status: 0 after a clean shutdown (SIGTERM or SIGINT); 1 on a storage failure \
            (restart to recover); 78 on a configuration error.
            """)

    @Option(help: "A TOML configuration file.")
    var config: String?

    @Option(help: "The app socket (default: $RUNTIME_DIRECTORY/streamd.sock, else $XDG_RUNTIME_DIR/streamd/streamd.sock).")
    var socket: String?

    @Option(help: "The state directory (default: $STATE_DIRECTORY, else $XDG_STATE_HOME/streamd, else ~/.local/state/streamd).")
    var stateDir: String?

    @Option(help: "embedded (default), tcp:HOST:PORT, unix:PATH or @name.")
    var kpclientd: String?

    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    func run() async throws {
        var overrides = ConfigurationOverrides()
        overrides.socketPath = socket
        overrides.stateDirectory = stateDir
        overrides.kpclientd = kpclientd
        overrides.logLevel = logLevel
        let configuration: DaemonConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config, overrides: overrides, environment: ProcessEnvironment.all())
        } catch {
            printError("streamd: \(error)")
            throw ExitCode(78)
        }
        var logger = Logger(label: "streamd")
        logger.logLevel = configuration.logLevel
        let daemon = StreamDaemon(configuration: configuration, logger: logger)
        var groupConfiguration = ServiceGroupConfiguration(services: [daemon], logger: logger)
        groupConfiguration.gracefulShutdownSignals = [.sigterm, .sigint]
        groupConfiguration.maximumGracefulShutdownDuration = configuration.shutdownTimeout
        groupConfiguration.maximumCancellationDuration = .seconds(2)
        let group = ServiceGroup(configuration: groupConfiguration)
        do {
            try await group.run()
        } catch {
            printError("streamd: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// The process environment.
enum ProcessEnvironment {
    static func all() -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
