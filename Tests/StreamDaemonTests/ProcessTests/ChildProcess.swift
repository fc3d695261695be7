import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How a child process ended.
enum Termination: Sendable, Equatable, CustomStringConvertible {
    /// It called exit with this status.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)

    init(waitStatus status: Int32) {
        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros Swift does not import.
        if status & 0x7f == 0 {
            self = .exited((status >> 8) & 0xff)
        } else {
            self = .signaled(status & 0x7f)
        }
    }

    /// The exit status, or 128 + the signal (as a shell reports it).
    var exitCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return 128 + signal
        }
    }

    var description: String {
        switch self {
        case .exited(let code): return "exit \(code)"
        case .signaled(let signal): return "signal \(signal)"
        }
    }
}

/// A spawn or wait that failed in the test harness itself.
struct ProcessHarnessError: Error, CustomStringConvertible {
    var description: String
}

/// A process started with `posix_spawn`, its stdout and stderr in files, killed by its PID.
///
/// Dropping the last reference to a process still running SIGKILLs and reaps it, so a failing
/// test never leaves a daemon behind; ``terminate(timeout:)`` is the graceful path.
final class ChildProcess: Sendable {
    /// The process id (kill and wait use only this).
    let pid: pid_t
    /// A short label for messages.
    let label: String
    /// The file receiving its standard output.
    let stdoutPath: String
    /// The file receiving its standard error.
    let stderrPath: String
    private let reaped = Mutex<Termination?>(nil)

    private init(pid: pid_t, label: String, stdoutPath: String, stderrPath: String) {
        self.pid = pid
        self.label = label
        self.stdoutPath = stdoutPath
        self.stderrPath = stderrPath
    }

    deinit {
        if reaped.withLock({ $0 }) == nil {
            Glibc.kill(pid, SIGKILL)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    /// Starts `executable` with `arguments`; stdin is `/dev/null` unless `stdinPath` is given.
    ///
    /// - Parameters:
    ///   - environment: the full environment of the child.
    ///   - appendOutput: append to the output files (one log across restarts) instead of truncating them.
    static func spawn(
        _ executable: String, _ arguments: [String], label: String, environment: [String: String],
        stdoutPath: String, stderrPath: String, stdinPath: String = "/dev/null", appendOutput: Bool = false
    ) throws -> ChildProcess {
        guard access(executable, X_OK) == 0 else {
            throw ProcessHarnessError(description: "\(executable) is not an executable file: run `swift build` first")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
        let mode = O_WRONLY | O_CREAT | (appendOutput ? O_APPEND : O_TRUNC)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, mode, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, mode, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal dispositions and an empty mask in the child, whatever the test runner set.
        var all = sigset_t()
        sigfillset(&all)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv = CStringArray([executable] + arguments)
        let envp = CStringArray(environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" })
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv.pointers, envp.pointers)
        withExtendedLifetime((argv, envp)) {}
        guard result == 0 else {
            throw ProcessHarnessError(description: "posix_spawn \(executable): \(String(cString: strerror(result)))")
        }
        return ChildProcess(pid: pid, label: label, stdoutPath: stdoutPath, stderrPath: stderrPath)
    }

    /// How it ended, if it has (reaps it without blocking).
    func poll() -> Termination? {
        reaped.withLock { state in
            if let state { return state }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            guard result == pid else { return nil }
            state = Termination(waitStatus: status)
            return state
        }
    }

    /// Waits up to `timeout` for it to end; nil if it is still running.
    func wait(timeout: Duration) async -> Termination? {
        let deadline = ContinuousClock.now + timeout
        var delay = Duration.milliseconds(2)
        while true {
            if let termination = poll() { return termination }
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(50))
        }
    }

    /// Sends `signal` to the process (by PID), unless it has been reaped already.
    func send(_ signal: Int32) {
        reaped.withLock { state in
            if state == nil { _ = Glibc.kill(pid, signal) }
        }
    }

    /// Its exit code (128 + signal if a signal ended it), if it has ended.
    var exitCode: Int32? { poll()?.exitCode }

    /// SIGKILLs it and reaps it without suspending (a killed process ends at once; bounded at 5 s).
    func killAndReap() {
        send(SIGKILL)
        for _ in 0..<2_500 where poll() == nil { usleep(2_000) }
    }

    /// SIGKILLs it and reaps it.
    @discardableResult
    func kill() async -> Termination? {
        send(SIGKILL)
        return await wait(timeout: .seconds(10))
    }

    /// SIGTERM, then SIGKILL if it has not ended within `timeout`; returns how it ended.
    @discardableResult
    func terminate(timeout: Duration = .seconds(15)) async -> Termination? {
        send(SIGTERM)
        if let termination = await wait(timeout: timeout) { return termination }
        return await kill()
    }

    /// Its standard output so far.
    var standardOutput: String { readText(stdoutPath) }
    /// Its standard error so far.
    var standardError: String { readText(stderrPath) }
}

/// A NULL-terminated `char *[]` that lives as long as this object.
private final class CStringArray {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let count: Int

    init(_ strings: [String]) {
        count = strings.count
        pointers = .allocate(capacity: strings.count + 1)
        for (index, string) in strings.enumerated() { pointers[index] = strdup(string) }
        pointers[strings.count] = nil
    }

    deinit {
        for index in 0..<count { free(pointers[index]) }
        pointers.deallocate()
    }
}

/// A whole file as text ("" if it cannot be read).
func readText(_ path: String) -> String {
    String(decoding: (try? readBytes(path)) ?? [], as: UTF8.self)
}

/// A whole file's bytes.
func readBytes(_ path: String) throws -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw ProcessHarnessError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw ProcessHarnessError(description: "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        if count == 0 { return result }
        result += buffer[0..<count]
    }
}

/// Writes `bytes` to a new file at `path`.
func writeBytes(_ bytes: [UInt8], to path: String) throws {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { throw ProcessHarnessError(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var written = 0
    while written < bytes.count {
        let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, bytes.count - written) }
        if count < 0 {
            if errno == EINTR { continue }
            throw ProcessHarnessError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
        written += count
    }
}
