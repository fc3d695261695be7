import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, its stdout and stderr in files; killed and reaped by PID.
///
/// Only this object reaps its PID (`waitpid(pid)`), so other children of the test process are untouched.
final class CrashChild: @unchecked Sendable {
    let pid: pid_t
    let name: String
    let stdoutPath: String
    let stderrPath: String
    private let lock = NSLock()
    private var status: Int32?

    private init(pid: pid_t, name: String, stdoutPath: String, stderrPath: String) {
        self.pid = pid
        self.name = name
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    /// Starts `executable` with `arguments`; stdin is /dev/null, stdout and stderr go to `logPrefix.out`/`.err` (appended).
    static func spawn(_ executable: String, _ arguments: [String], name: String, logPrefix: String) throws -> CrashChild {
        let stdoutPath = logPrefix + ".out"
        let stderrPath = logPrefix + ".err"
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard result == 0 else {
            throw ProcessFailure(description: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        return CrashChild(pid: pid, name: name, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// Sends `signal` to the process unless it was already reaped.
    func kill(_ signal: Int32 = SIGKILL) {
        lock.lock()
        defer { lock.unlock() }
        if status == nil { _ = Glibc.kill(pid, signal) }
    }

    /// The raw wait status once the process ended; reaps it without blocking.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        if let status { return status }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid { status = raw }
        return status
    }

    /// The exit code, or `128 + signal` if a signal ended it; `nil` while it runs.
    var exitCode: Int32? {
        guard let raw = exitStatus else { return nil }
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }

    /// Waits (polling every 10 ms) until the process ends or `timeout` passes; returns its exit code.
    func wait(timeout: Duration) async -> Int32? {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let code = exitCode { return code }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return exitCode
    }

    /// SIGKILLs the process and reaps it (bounded: a killed process ends at once).
    func killAndReap() {
        kill(SIGKILL)
        for _ in 0..<500 {
            if exitStatus != nil { return }
            usleep(2_000)
        }
    }

    /// The text the process wrote to stdout so far.
    var standardOutput: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    /// The text the process wrote to stderr so far.
    var standardError: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }
}

/// A failure of the process helpers, with what was running.
struct ProcessFailure: Error, CustomStringConvertible {
    var description: String
}

/// Every child a test started, killed and reaped at the end even when the test fails.
final class CrashChildren: @unchecked Sendable {
    private let lock = NSLock()
    private var children: [CrashChild] = []

    func add(_ child: CrashChild) {
        lock.lock()
        children.append(child)
        lock.unlock()
    }

    deinit {
        for child in children { child.killAndReap() }
    }
}

/// Where the build products are: `<repository root>/.build/debug`.
enum BuildProducts {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func path(_ executable: String) -> String {
        repositoryRoot.appendingPathComponent(".build/debug/\(executable)").path
    }

    /// Whether the three executables are built (`swift build`).
    static var available: Bool {
        ["streamd", "streamctl", "kpclientd-sim"].allSatisfy { access(path($0), X_OK) == 0 }
    }
}
