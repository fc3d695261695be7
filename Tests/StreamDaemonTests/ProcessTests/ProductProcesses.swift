import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where the built executables and the repository are.
enum Products {
    /// The repository root (this file is `Tests/StreamDaemonTests/ProcessTests/ProductProcesses.swift`).
    static let repositoryRoot: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(4)
        return parts.joined(separator: "/")
    }()

    /// The directory holding the test bundle, where SwiftPM also puts the executables; else `.build/debug`.
    static let directory: String = {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if count > 0 {
            let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // …/debug/streamdPackageTests.xctest
            let parent = String(path[..<(path.lastIndex(of: "/") ?? path.endIndex)])
            if access(parent + "/streamd", X_OK) == 0 { return parent }
        }
        return repositoryRoot + "/.build/debug"
    }()

    static var streamd: String { directory + "/streamd" }
    static var streamctl: String { directory + "/streamctl" }
    static var kpclientdSim: String { directory + "/kpclientd-sim" }

    /// Whether the three executables are built (`swift build`), for `.enabled(if:)`.
    static var available: Bool {
        [streamd, streamctl, kpclientdSim].allSatisfy { (path: String) in access(path, X_OK) == 0 }
    }

    /// Fails with a clear message unless every executable exists.
    static func require() throws {
        for path in [streamd, streamctl, kpclientdSim] where access(path, X_OK) != 0 {
            throw ProcessHarnessError(description: "\(path) is missing: run `swift build` (it builds streamd, streamctl and kpclientd-sim) before these tests")
        }
    }
}

/// Every child a test started; killed and reaped when the last reference goes, even if the test fails.
final class ChildProcesses: Sendable {
    private let children = Mutex<[ChildProcess]>([])

    func add(_ child: ChildProcess) {
        children.withLock { $0.append(child) }
    }

    deinit {
        for child in children.withLock({ $0 }) { child.killAndReap() }
    }
}

/// A scratch directory for one test: every child's output file, socket and state lives in it.
final class ProcessWorkspace: Sendable {
    let directory = TemporaryDirectory()
    private let counter = Mutex(0)

    var path: String { directory.path }

    /// A fresh file path in the workspace, named after `stem`.
    func file(_ stem: String) -> String {
        let number = counter.withLock { value in
            value += 1
            return value
        }
        return "\(path)/\(number)-\(stem)"
    }

    /// Creates `name` under the workspace and returns its path.
    func subdirectory(_ name: String) -> String {
        let child = path + "/" + name
        mkdir(child, 0o700)
        return child
    }

    /// The environment for children: the runner's, minus `STREAMD_SOCKET`, with XDG paths inside the workspace.
    func environment(_ overrides: [String: String] = [:]) -> [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        result["STREAMD_SOCKET"] = nil
        result["XDG_RUNTIME_DIR"] = path
        result["XDG_STATE_HOME"] = path
        for (key, value) in overrides { result[key] = value }
        return result
    }

    /// Starts a long-running child whose output goes to workspace files.
    func spawn(_ executable: String, _ arguments: [String], label: String, environment: [String: String]? = nil) throws -> ChildProcess {
        try ChildProcess.spawn(
            executable, arguments, label: label, environment: environment ?? self.environment(),
            stdoutPath: file("\(label).out"), stderrPath: file("\(label).err"))
    }

    /// Runs a command to its end (SIGKILL after `timeout`) and returns its outcome.
    func run(
        _ executable: String, _ arguments: [String], label: String, environment: [String: String]? = nil,
        stdinPath: String = "/dev/null", timeout: Duration = .seconds(60)
    ) async throws -> CommandResult {
        let child = try ChildProcess.spawn(
            executable, arguments, label: label, environment: environment ?? self.environment(),
            stdoutPath: file("\(label).out"), stderrPath: file("\(label).err"), stdinPath: stdinPath)
        let started = ContinuousClock.now
        guard let termination = await child.wait(timeout: timeout) else {
            await child.kill()
            throw ProcessHarnessError(
                description: "\(label) \(arguments.joined(separator: " ")) did not end within \(timeout); stderr:\n\(child.standardError.suffix(4000))")
        }
        return CommandResult(
            arguments: arguments, termination: termination, stdout: child.standardOutput, stderr: child.standardError,
            elapsed: ContinuousClock.now - started)
    }
}

/// How a finished command went.
struct CommandResult: Sendable, CustomStringConvertible {
    var arguments: [String]
    var termination: Termination
    var stdout: String
    var stderr: String
    var elapsed: Duration

    /// The exit status, or -1 when a signal ended it.
    var status: Int32 {
        if case .exited(let code) = termination { return code }
        return -1
    }

    /// The non-empty lines of standard output.
    var lines: [String] { stdout.split(separator: "\n").map(String.init) }

    var description: String {
        "`\(arguments.joined(separator: " "))` → \(termination) in \(elapsed)\nstdout: \(stdout.suffix(2000))\nstderr: \(stderr.suffix(2000))"
    }
}

/// A `streamd run` process with its own socket and state directory.
final class StreamdProcess: Sendable {
    let child: ChildProcess
    let socketPath: String
    let stateDirectory: String
    let workspace: ProcessWorkspace

    private init(child: ChildProcess, socketPath: String, stateDirectory: String, workspace: ProcessWorkspace) {
        self.child = child
        self.socketPath = socketPath
        self.stateDirectory = stateDirectory
        self.workspace = workspace
    }

    /// Starts `streamd run` in `workspace/<name>/` with `kpclientd` and waits until `streamctl status` answers.
    static func start(
        in workspace: ProcessWorkspace, name: String, kpclientd: String = "embedded", extraArguments: [String] = [],
        readyTimeout: Duration = .seconds(60)
    ) async throws -> StreamdProcess {
        let base = workspace.subdirectory(name)
        let socketPath = base + "/run/streamd.sock"
        let stateDirectory = base + "/state"
        let child = try workspace.spawn(
            Products.streamd,
            ["run", "--socket", socketPath, "--state-dir", stateDirectory, "--kpclientd", kpclientd, "--log-level", "info"] + extraArguments,
            label: "streamd-\(name)")
        let daemon = StreamdProcess(child: child, socketPath: socketPath, stateDirectory: stateDirectory, workspace: workspace)
        let deadline = ContinuousClock.now + readyTimeout
        while ContinuousClock.now < deadline {
            if let ended = child.poll() {
                throw ProcessHarnessError(description: "streamd \(name) ended (\(ended)) before it was ready:\n\(child.standardError.suffix(4000))\(child.standardOutput.suffix(4000))")
            }
            if access(socketPath, F_OK) == 0 {
                let probe = try await daemon.ctl(["status"], timeout: .seconds(20))
                if probe.status == 0 { return daemon }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        await child.kill()
        throw ProcessHarnessError(description: "streamd \(name) was not ready within \(readyTimeout)")
    }

    /// Runs `streamctl ARGS --socket S` to its end.
    func ctl(_ arguments: [String], stdinPath: String = "/dev/null", timeout: Duration = .seconds(60)) async throws -> CommandResult {
        try await workspace.run(
            Products.streamctl, arguments + ["--socket", socketPath], label: "streamctl-\(arguments.first ?? "")", stdinPath: stdinPath,
            timeout: timeout)
    }

    /// Stops it with SIGTERM and returns how it ended.
    @discardableResult
    func stop() async -> Termination? {
        await child.terminate(timeout: .seconds(15))
    }
}

/// An external `kpclientd-sim` process on a loopback TCP port.
final class KpclientdSimProcess: Sendable {
    let child: ChildProcess
    let port: Int

    private init(child: ChildProcess, port: Int) {
        self.child = child
        self.port = port
    }

    /// `tcp:127.0.0.1:PORT`, the `--kpclientd` value for streamd.
    var dialAddress: String { "tcp:127.0.0.1:\(port)" }

    /// Starts the simulator on `port` (0: an ephemeral one) and returns once it printed its address.
    static func start(in workspace: ProcessWorkspace, port: Int = 0, extra: [String]) async throws -> KpclientdSimProcess {
        let child = try workspace.spawn(
            Products.kpclientdSim, ["--listen", "tcp:127.0.0.1:\(port)"] + extra, label: "kpclientd-sim")
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            if let line = child.standardOutput.split(separator: "\n").first(where: { $0.hasPrefix("kpclientd-sim listening on tcp:") }),
                let portText = line.split(separator: ":").last, let bound = Int(portText)
            {
                return KpclientdSimProcess(child: child, port: bound)
            }
            if let ended = child.poll() {
                throw ProcessHarnessError(description: "kpclientd-sim ended (\(ended)) before listening:\n\(child.standardError.suffix(4000))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        await child.kill()
        throw ProcessHarnessError(description: "kpclientd-sim printed no listen address within 30s")
    }
}

/// Deterministic, non-repeating test bytes.
func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    var result = [UInt8]()
    result.reserveCapacity(count)
    while result.count < count {
        // splitmix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        withUnsafeBytes(of: z.littleEndian) { result += $0.prefix(count - result.count) }
    }
    return result
}

/// Polls `condition` every 100 ms until it holds or `timeout` passes; returns the time it took, or nil.
func waitUntil(timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout {
        if try await condition() { return ContinuousClock.now - start }
        try? await Task.sleep(for: .milliseconds(100))
    }
    return nil
}
