import IPC
import KpclientdSim
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle
import StreamCrypto
import StreamStore

/// The streamd daemon as a service: run it in a `ServiceGroup` (as `streamd` does) or in
/// process (as the tests do).
///
/// Start-up order: the state directory (0700) and database, the kpclientd link (the embedded
/// simulator first, if configured), the restore of every stream, then the app socket. Readiness
/// is reported only after that, through ``Hooks/ready``. On graceful shutdown the daemon stops
/// accepting, finishes its commits, sends `thin_close` and returns; a storage failure makes
/// ``run()`` throw, so the process exits non-zero and recovers on restart.
public struct StreamDaemon: Service {
    /// Callbacks for the process around the daemon (systemd notifications, tests).
    public struct Hooks: Sendable {
        /// Called once every stream is restored and the socket is bound, with a probe for live
        /// counts and liveness checks.
        public var ready: @Sendable (DaemonProbe) async -> Void = { _ in }
        /// Called during restore with (restored, total).
        public var restoring: @Sendable (Int, Int) -> Void = { _, _ in }
        /// Called when shutdown begins.
        public var stopping: @Sendable () -> Void = {}

        /// Creates hooks that do nothing.
        public init() {}
    }

    /// The configuration the daemon runs with.
    public let configuration: DaemonConfiguration
    private let logger: Logger
    private let hooks: Hooks
    private let listenDescriptor: Int32?
    private let storeFaults: StoreFaultInjector?

    /// Creates the daemon.
    ///
    /// - Parameter storeFaults: a fault injector under the database (reliability tests only).
    /// - Parameter listenDescriptor: a listening socket to adopt (socket activation) instead
    ///   of binding ``DaemonConfiguration/socketPath``.
    public init(
        configuration: DaemonConfiguration, logger: Logger, hooks: Hooks = Hooks(), listenDescriptor: Int32? = nil,
        storeFaults: StoreFaultInjector? = nil
    ) {
        self.storeFaults = storeFaults
        self.configuration = configuration
        self.logger = logger
        self.hooks = hooks
        self.listenDescriptor = listenDescriptor
    }

    /// A failure that stops the daemon.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, with the path or key involved.
        public var description: String
    }

    public func run() async throws {
        do {
            try SocketPath.makePrivateDirectory(configuration.stateDirectory)
        } catch {
            throw Failure(description: "state directory: \(error.description)")
        }
        let stateLock = try StateLock.acquire(directory: configuration.stateDirectory)
        defer { withExtendedLifetime(stateLock) {} }
        let runtimeDirectory = SocketPath.parent(of: configuration.socketPath)
        if listenDescriptor == nil || configuration.kpclientd == .embedded {
            do {
                try SocketPath.makePrivateDirectory(runtimeDirectory)
            } catch {
                throw Failure(description: "socket directory: \(error.description)")
            }
        }
        if listenDescriptor == nil {
            // Refuse early if another streamd answers on the socket: before touching its
            // database or its embedded kpclientd's socket.
            do {
                try SocketPath.prepare(configuration.socketPath)
            } catch {
                throw Failure(description: error.description)
            }
        }
        let database = try await StreamDatabase.open(directory: configuration.stateDirectory, faults: storeFaults)
        let link = KpclientdLink(
            endpoint: configuration.kpclientd, embedded: configuration.embedded, scheduler: configuration.scheduler,
            transport: configuration.transport, runtimeDirectory: runtimeDirectory,
            stateDirectory: configuration.stateDirectory, logger: logger)
        let (fatalErrors, fatalSink) = AsyncStream.makeStream(of: (any Error).self, bufferingPolicy: .bufferingNewest(1))
        let host = StreamHost(configuration: configuration, database: database, link: link, logger: logger) { error in
            fatalSink.yield(error)
        }
        do {
            try await link.startEmbedded()
        } catch {
            await database.close()
            throw Failure(description: "starting the embedded kpclientd failed: \(error)")
        }
        do {
            try await host.restoreAll(progress: hooks.restoring)
        } catch {
            await link.close()
            await database.close()
            throw error
        }

        let serverBox = NIOLockedValueBox<AppServer?>(nil)
        let instance = SecureRandom.bytes(16)
        let configuration = self.configuration
        let context = AppConnection.Context(
            configuration: configuration, host: host, logger: logger, instance: instance,
            status: {
                let counts = await host.counts()
                return IPCDaemonStatus(
                    version: daemonVersion, instance: instance, kpclientdConnected: await host.kpclientdUp,
                    kpclientd: link.endpointDescription, streams: UInt64(counts.streams), active: UInt64(counts.active),
                    damaged: UInt64(counts.damaged), connections: UInt64(serverBox.withLockedValue { $0?.connectionCount ?? 0 }))
            })
        let server: AppServer
        do {
            if let listenDescriptor {
                server = try await AppServer.adopt(descriptor: listenDescriptor, context: context)
            } else {
                server = try await AppServer.bind(path: configuration.socketPath, context: context)
            }
        } catch {
            await host.shutdown()
            await link.close()
            await database.close()
            throw Failure(description: "app socket \(configuration.socketPath): \(error)")
        }
        serverBox.withLockedValue { $0 = server }
        logger.info("streamd ready", metadata: ["socket": "\(configuration.socketPath)", "kpclientd": "\(link.endpointDescription)"])
        await hooks.ready(DaemonProbe(host: host, connections: { serverBox.withLockedValue { $0?.connectionCount ?? 0 } }))

        let fatal: (any Error)? = await withTaskGroup(of: Outcome.self) { group in
            group.addTask {
                await link.run { up in await host.kpclientdChanged(up: up) }
                return .finished
            }
            group.addTask {
                await server.run()
                return .finished
            }
            group.addTask {
                do {
                    try await gracefulShutdown()
                } catch {}
                return .shutdown
            }
            group.addTask {
                for await error in fatalErrors { return .fatal(error) }
                return .finished
            }
            var fatal: (any Error)?
            while let outcome = await group.next() {
                switch outcome {
                case .finished: continue
                case .shutdown: break
                case .fatal(let error): fatal = error
                }
                break
            }
            // A storage failure that raced a shutdown request still ends the run with its error
            // (the app that saw the failure may well be what asked streamd to stop).
            if fatal == nil { fatal = await host.fatalError }
            hooks.stopping()
            logger.info("streamd stopping")
            await server.close()
            if fatal == nil { await host.shutdown() }
            await link.close()
            fatalSink.finish()
            group.cancelAll()
            return fatal
        }
        await database.close()
        if let fatal { throw fatal }
        logger.info("streamd stopped")
    }

    private enum Outcome: Sendable {
        case finished
        case shutdown
        case fatal(any Error)
    }
}

extension StreamHost {
    /// Stream counts for status displays.
    func counts() -> (streams: Int, active: Int, damaged: Int) {
        let active = streams.values.reduce(0) { $0 + ($1.running.isEmpty ? 0 : 1) }
        return (streams.count, active, damaged.count)
    }
}

/// A read-only view of a running daemon, for status lines and liveness checks (systemd's
/// `STATUS=` and watchdog).
public struct DaemonProbe: Sendable {
    /// Counts at one moment.
    public struct Snapshot: Sendable, Hashable {
        /// Streams running (damaged ones are counted apart).
        public var streams: Int
        /// Streams with transport operations running.
        public var active: Int
        /// Streams quarantined because their stored state is damaged.
        public var damaged: Int
        /// Whether the kpclientd session is up.
        public var kpclientdConnected: Bool
        /// App connections open.
        public var connections: Int
    }

    let host: StreamHost
    let connections: @Sendable () -> Int

    /// The current counts.
    public func snapshot() async -> Snapshot {
        let counts = await host.counts()
        return Snapshot(
            streams: counts.streams, active: counts.active, damaged: counts.damaged,
            kpclientdConnected: await host.kpclientdUp, connections: connections())
    }

    /// The embedded kpclientd's counters (requests received, boxes stored, …), or `nil` when
    /// streamd uses an external kpclientd.
    public func embeddedKpclientdStatistics() async -> KpclientdSimStatistics? {
        await host.link.embeddedStatistics()
    }

    /// Transport operations the streams started, by kind, and why their box writes were made.
    public func operationCounts() async -> OperationCounts {
        await host.operationCounts()
    }

    /// A round trip through the stream host: `true` if it answered and is neither stopping nor
    /// halted by a storage failure. It does not return while the host is stuck.
    public func ping() async -> Bool {
        await host.isHealthy
    }
}

extension StreamHost {
    /// Whether the host runs normally (for liveness checks).
    var isHealthy: Bool { !isStopping && fatalError == nil }
}
