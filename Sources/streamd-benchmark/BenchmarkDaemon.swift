import Logging
import ServiceLifecycle
import StreamClient
import StreamDaemon

/// A streamd running in this process (as `DaemonHarness` in the tests): real Unix socket,
/// real SQLite file, embedded kpclientd with zero latency.
final class BenchmarkDaemon: Sendable {
    let configuration: DaemonConfiguration
    /// From calling `StreamDaemon.run()` to its ready hook.
    let startToReady: Duration
    /// Live counts, including the embedded kpclientd's.
    let probe: DaemonProbe
    private let group: ServiceGroup
    private let task: Task<Result<Void, any Error>, Never>

    private init(
        configuration: DaemonConfiguration, startToReady: Duration, probe: DaemonProbe, group: ServiceGroup, task: Task<Result<Void, any Error>, Never>
    ) {
        self.configuration = configuration
        self.startToReady = startToReady
        self.probe = probe
        self.group = group
        self.task = task
    }

    /// Socket in `directory/run`, state in `directory/state`, embedded kpclientd at latency 0.
    static func configuration(in directory: String) -> DaemonConfiguration {
        var configuration = DaemonConfiguration(environment: [:])
        configuration.socketPath = directory + "/run/streamd.sock"
        configuration.stateDirectory = directory + "/state"
        configuration.embedded.latency = .zero
        configuration.logLevel = .error
        return configuration
    }

    /// Starts the daemon and returns once it reports ready.
    static func start(_ configuration: DaemonConfiguration) async throws -> BenchmarkDaemon {
        var logger = Logger(label: "streamd-benchmark")
        logger.logLevel = configuration.logLevel
        let clock = ContinuousClock()
        let (ready, readySink) = AsyncStream.makeStream(of: (ContinuousClock.Instant, DaemonProbe).self)
        var hooks = StreamDaemon.Hooks()
        hooks.ready = { readySink.yield((clock.now, $0)) }
        let daemon = StreamDaemon(configuration: configuration, logger: logger, hooks: hooks)
        let group = ServiceGroup(services: [daemon], logger: logger)
        let start = clock.now
        let task = Task<Result<Void, any Error>, Never> {
            defer { readySink.finish() }
            do {
                try await group.run()
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        for await (instant, probe) in ready {
            return BenchmarkDaemon(configuration: configuration, startToReady: instant - start, probe: probe, group: group, task: task)
        }
        if case .failure(let error) = await task.value { throw error }
        throw BenchmarkError("streamd ended before it was ready")
    }

    /// Shuts the daemon down gracefully.
    func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value.get()
    }

    /// A connected client.
    func client(_ name: String = "bench") async throws -> StreamdClient {
        try await StreamdClient.connect(socketPath: configuration.socketPath, clientName: name)
    }
}
