import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import StreamDaemon
import Synchronization
import SystemdSupport
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

            Under systemd (see docs/SYSTEMD.md) streamd reports readiness and status, feeds the \
            watchdog, adopts a socket-activated listener and logs to the journal. SIGHUP re-reads \
            the configuration file: log_level changes at once; other changed settings are logged \
            and keep their old value until a restart.

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

    @Option(help: "auto (the journal when run by systemd, else stderr), journal or stderr.")
    var logTarget: String?

    func run() async throws {
        // Trap SIGHUP before anything else, so a reload request never kills the daemon.
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        var overrides = ConfigurationOverrides()
        overrides.socketPath = socket
        overrides.stateDirectory = stateDir
        overrides.kpclientd = kpclientd
        overrides.logLevel = logLevel
        overrides.logTarget = logTarget
        let environment = ProcessInfo.processInfo.environment
        let configuration: DaemonConfiguration
        do {
            configuration = try ConfigurationLoader.load(path: config, overrides: overrides, environment: environment)
        } catch {
            printError("streamd: \(error)")
            throw ExitCode(78)
        }
        let levelControl = LogLevelControl(configuration.logLevel)
        let target = LogTarget(rawValue: configuration.logTarget.rawValue) ?? .auto
        LoggingSystem.bootstrap(target.makeFactory(identifier: "streamd", control: levelControl, environment: environment))
        let logger = Logger(label: "streamd")

        let listener: Int32?
        do {
            listener = try ListenFDs.adoptFromProcess(environment: environment).listener(named: "streamd")
        } catch {
            logger.critical("socket activation: \(error)")
            throw ExitCode(78)
        }
        let notifier: SystemdNotifier
        do {
            notifier = try SystemdNotifier(environment: environment)
        } catch {
            logger.warning("not notifying systemd: \(error)")
            notifier = .disabled
        }
        let state = SystemdIntegration.State()
        let running = RunningConfiguration(configuration)
        let configPath = config
        let fileOverrides = overrides
        let integration = SystemdIntegration(
            notifier: notifier, state: state, hangups: hangups, logger: logger,
            reload: {
                Self.reload(path: configPath, overrides: fileOverrides, environment: environment, running: running, levelControl: levelControl, logger: logger)
            })
        let daemon = StreamDaemon(
            configuration: configuration, logger: logger, hooks: SystemdIntegration.hooks(notifier: notifier, state: state),
            listenDescriptor: listener)
        var groupConfiguration = ServiceGroupConfiguration(services: [daemon, integration], logger: logger)
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

extension Run {
    /// Re-reads the configuration: live settings take effect, the others are reported and keep
    /// their running value.
    static func reload(
        path: String?, overrides: ConfigurationOverrides, environment: [String: String],
        running: RunningConfiguration, levelControl: LogLevelControl, logger: Logger
    ) {
        let loaded: DaemonConfiguration
        do {
            loaded = try ConfigurationLoader.load(path: path, overrides: overrides, environment: environment)
        } catch {
            logger.error("configuration reload failed; keeping the running configuration", metadata: ["error": "\(error)"])
            return
        }
        let result = running.value.withLock { current in
            let result = ConfigurationReload(running: current, loaded: loaded)
            current = result.effective
            return result
        }
        levelControl.current = result.effective.logLevel
        for key in result.needsRestart {
            logger.warning("setting changed in the file but cannot change while streamd runs; keeping the old value until a restart", metadata: ["key": "\(key)"])
        }
        logger.notice(
            "configuration reloaded",
            metadata: ["applied": "\(result.applied.joined(separator: ","))", "needs_restart": "\(result.needsRestart.joined(separator: ","))", "log_level": "\(result.effective.logLevel)"])
    }
}

/// The configuration in effect, replaced by reloads.
final class RunningConfiguration: Sendable {
    let value: Mutex<DaemonConfiguration>
    init(_ configuration: DaemonConfiguration) { value = Mutex(configuration) }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

