import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One of the package's executables (`.build/debug/NAME`) run as a child process, its output in files.
final class ProductProcess: @unchecked Sendable {
    // Used by one test at a time.
    let process = Process()
    let directory: URL
    let stdoutURL: URL
    let stderrURL: URL

    /// The path of a built product; `swift build` must have run.
    static func path(_ name: String) -> String {
        TestSupport.repositoryRoot.appendingPathComponent(".build/debug/\(name)").path
    }

    /// Starts `name` with `arguments`.
    init(_ name: String, _ arguments: [String]) throws {
        let path = Self.path(name)
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("\(path) is missing: run `swift build` first")
        }
        directory = try TestSupport.temporaryDirectory()
        stdoutURL = directory.appendingPathComponent("stdout")
        stderrURL = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
        process.standardError = try FileHandle(forWritingTo: stderrURL)
        try process.run()
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    var stdout: String { (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "" }

    /// Sends `signal` to the process (by its id).
    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits up to `timeout` for the process to end; its exit status, or `nil` if it still runs.
    func wait(timeout: Duration) async throws -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else { return nil }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Runs `name` to completion (killed after `timeout`): status (`nil` on timeout), stdout, stderr.
    static func run(_ name: String, _ arguments: [String], timeout: Duration = .seconds(60)) async throws -> (status: Int32?, stdout: String, stderr: String) {
        let child = try ProductProcess(name, arguments)
        let status = try await child.wait(timeout: timeout)
        return (status, child.stdout, child.stderr)
    }

    /// Waits for kpclientd-sim's "listening on ADDRESS" line and returns the address.
    func listenAddress(timeout: Duration = .seconds(20)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let line = stdout.split(separator: "\n").first(where: { $0.contains("listening on ") }),
                let range = line.range(of: "listening on ")
            {
                return String(line[range.upperBound...])
            }
            guard process.isRunning else { throw TestFailure("kpclientd-sim exited: \(stderr)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestFailure("kpclientd-sim printed no listen address: \(stderr)")
    }
}
