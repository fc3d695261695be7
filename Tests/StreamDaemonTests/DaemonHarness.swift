import IPC
import Logging
import ServiceLifecycleTestKit
import StreamClient
import StreamDaemon
import StreamStore

#if canImport(Glibc)
import Glibc
#endif

/// A temporary directory, removed with its contents when the test ends.
final class TemporaryDirectory: Sendable {
    let path: String

    init() {
        var template = Array("/tmp/sdt-XXXXXX".utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(result != nil, "mkdtemp failed")
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        removeTree(path)
    }
}

/// Removes a directory tree (test clean-up).
func removeTree(_ path: String) {
    guard let directory = opendir(path) else {
        unlink(path)
        return
    }
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        var info = stat()
        if lstat(child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            removeTree(child)
        } else {
            unlink(child)
        }
    }
    closedir(directory)
    rmdir(path)
}

/// A streamd running in process on real sockets and a real SQLite file, with the embedded kpclientd.
final class DaemonHarness: Sendable {
    let configuration: DaemonConfiguration
    private let task: Task<Result<Void, any Error>, Never>
    private let trigger: GracefulShutdownTestTrigger
    /// Live counts of the running daemon.
    let probe: DaemonProbe

    var socketPath: String { configuration.socketPath }

    private init(configuration: DaemonConfiguration, task: Task<Result<Void, any Error>, Never>, trigger: GracefulShutdownTestTrigger, probe: DaemonProbe) {
        self.configuration = configuration
        self.task = task
        self.trigger = trigger
        self.probe = probe
    }

    /// A configuration in `directory`: socket in `run/`, state in `state/`, a fast embedded kpclientd.
    static func configuration(in directory: String) -> DaemonConfiguration {
        var configuration = DaemonConfiguration(environment: [:])
        configuration.socketPath = directory + "/run/streamd.sock"
        configuration.stateDirectory = directory + "/state"
        configuration.embedded.latency = .milliseconds(1)
        configuration.logLevel = .warning
        return configuration
    }

    /// Starts the daemon and returns once it reports ready.
    static func start(_ configuration: DaemonConfiguration, storeFaults: StoreFaultInjector? = nil) async throws -> DaemonHarness {
        var logger = Logger(label: "streamd-test")
        logger.logLevel = configuration.logLevel
        let (ready, readySink) = AsyncStream.makeStream(of: DaemonProbe.self)
        var hooks = StreamDaemon.Hooks()
        hooks.ready = { readySink.yield($0) }
        let daemon = StreamDaemon(configuration: configuration, logger: logger, hooks: hooks, storeFaults: storeFaults)
        let (triggers, triggerSink) = AsyncStream.makeStream(of: GracefulShutdownTestTrigger.self)
        let task = Task<Result<Void, any Error>, Never> {
            let result: Result<Void, any Error>
            do {
                try await testGracefulShutdown { trigger in
                    triggerSink.yield(trigger)
                    try await daemon.run()
                }
                result = .success(())
            } catch {
                result = .failure(error)
            }
            readySink.finish()
            return result
        }
        var iterator = triggers.makeAsyncIterator()
        guard let trigger = await iterator.next() else {
            // Cancelled (a time limit) before the daemon started: stop it and say so.
            task.cancel()
            _ = await task.value
            throw HarnessError(description: "cancelled while starting streamd")
        }
        for await probe in ready {
            return DaemonHarness(configuration: configuration, task: task, trigger: trigger, probe: probe)
        }
        if Task.isCancelled {
            trigger.triggerGracefulShutdown()
            _ = await task.value
            throw HarnessError(description: "cancelled while waiting for streamd to be ready")
        }
        // The daemon ended before it was ready: report why.
        if case .failure(let error) = await task.value { throw error }
        throw HarnessError(description: "streamd ended before it was ready")
    }

    /// Shuts the daemon down gracefully and returns how its run ended.
    @discardableResult
    func stop() async -> Result<Void, any Error> {
        trigger.triggerGracefulShutdown()
        return await task.value
    }

    /// A connected client.
    func client() async throws -> StreamdClient {
        try await StreamdClient.connect(socketPath: socketPath, clientName: "test")
    }
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
}
