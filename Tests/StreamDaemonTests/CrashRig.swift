import Foundation
import StreamClient

#if canImport(Glibc)
import Glibc
#endif

/// A small seeded generator (SplitMix64) so a failing crash schedule can be replayed with its seed.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Seconds as a Double, for printing.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Processes of a crash test in one temporary directory: an external `kpclientd-sim` and
/// `streamd` daemons that can be SIGKILLed and restarted with the same arguments.
final class CrashRig: @unchecked Sendable {
    let directory = TemporaryDirectory()
    let children = CrashChildren()
    private(set) var kpclientdAddress = ""

    var path: String { directory.path }

    /// Starts `kpclientd-sim` on an ephemeral TCP port with its box store in a file.
    func startSimulator(latency: String = "2ms", writeLoss: Double = 0.1) async throws {
        let child = try CrashChild.spawn(
            BuildProducts.path("kpclientd-sim"),
            ["--listen", "tcp:127.0.0.1:0", "--latency", latency, "--write-loss", "\(writeLoss)",
             "--state", path + "/pigeonhole.state", "--log-level", "warning"],
            name: "kpclientd-sim", logPrefix: path + "/kpclientd-sim")
        children.add(child)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            if let line = child.standardOutput.split(separator: "\n").first(where: { $0.contains("listening on ") }),
               let range = line.range(of: "listening on ") {
                kpclientdAddress = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
                return
            }
            if let code = child.exitCode {
                throw ProcessFailure(description: "kpclientd-sim exited with \(code): \(child.standardError)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessFailure(description: "kpclientd-sim did not report its address in 20 s")
    }

    /// A daemon with its own socket and state directory, connected to the simulator.
    ///
    /// - Parameter toml: a configuration file's text, passed with `--config`.
    func daemon(_ name: String, toml: String? = nil) throws -> DaemonProcess {
        var extra: [String] = []
        if let toml {
            let file = path + "/" + name + ".toml"
            try Data(toml.utf8).write(to: URL(fileURLWithPath: file))
            extra = ["--config", file]
        }
        return DaemonProcess(name: name, directory: path + "/" + name, kpclientd: kpclientdAddress, extraArguments: extra, children: children)
    }

    /// Runs `streamctl` in the background.
    func startStreamctl(_ arguments: [String], name: String) throws -> CrashChild {
        let child = try CrashChild.spawn(BuildProducts.path("streamctl"), arguments, name: name, logPrefix: path + "/" + name)
        children.add(child)
        return child
    }

    /// Runs `streamctl` to completion (bounded by `timeout`); returns exit code and stdout.
    func streamctl(_ arguments: [String], name: String, timeout: Duration = .seconds(60)) async throws -> (code: Int32, output: String) {
        let child = try startStreamctl(arguments, name: name)
        guard let code = await child.wait(timeout: timeout) else {
            child.killAndReap()
            throw ProcessFailure(description: "streamctl \(arguments.first ?? "") did not finish in \(timeout): \(child.standardError)")
        }
        return (code, child.standardOutput)
    }

    /// Writes `count` random bytes to `name` in the rig's directory and returns its path and bytes.
    func randomFile(_ name: String, count: Int, generator: inout SeededGenerator) throws -> (path: String, bytes: [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            let word = generator.next()
            for shift in stride(from: 0, to: 64, by: 8) where index < count {
                bytes[index] = UInt8(truncatingIfNeeded: word >> UInt64(shift))
                index += 1
            }
        }
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return (file, bytes)
    }
}

/// One streamd process, restarted with the same arguments after every kill.
final class DaemonProcess: @unchecked Sendable {
    let name: String
    let socketPath: String
    let stateDirectory: String
    let arguments: [String]
    private let children: CrashChildren
    private let logPrefix: String
    private(set) var current: CrashChild?
    private(set) var starts = 0
    /// Restart (exec) to ready (socket answers a status request) of every start.
    private(set) var readyTimes: [Duration] = []

    init(name: String, directory: String, kpclientd: String, extraArguments: [String], children: CrashChildren) {
        self.name = name
        socketPath = directory + "/run/streamd.sock"
        stateDirectory = directory + "/state"
        logPrefix = directory + "-streamd"
        self.children = children
        arguments = ["run", "--socket", socketPath, "--state-dir", stateDirectory, "--kpclientd", kpclientd, "--log-level", "info"] + extraArguments
    }

    /// Starts the process (without waiting for readiness).
    @discardableResult
    func spawn() throws -> CrashChild {
        let child = try CrashChild.spawn(BuildProducts.path("streamd"), arguments, name: name, logPrefix: logPrefix)
        children.add(child)
        current = child
        starts += 1
        return child
    }

    /// Starts the process and waits until its socket answers a status request; records the time.
    @discardableResult
    func start(timeout: Duration = .seconds(30)) async throws -> Duration {
        let clock = ContinuousClock()
        let began = clock.now
        try spawn()
        try await waitReady(timeout: timeout)
        let elapsed = clock.now - began
        readyTimes.append(elapsed)
        return elapsed
    }

    /// Polls the socket (every 5 ms, bounded) until `status` succeeds.
    func waitReady(timeout: Duration) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            if let child = current, let code = child.exitCode {
                throw ProcessFailure(description: "streamd \(name) exited with \(code) before it was ready: \(child.standardError.suffix(2000))")
            }
            if let client = try? await StreamdClient.connect(socketPath: socketPath, clientName: "crash-test") {
                let status = try? await client.daemonStatus()
                await client.close()
                if status != nil { return }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ProcessFailure(description: "streamd \(name) was not ready within \(timeout)")
    }

    /// SIGKILLs the running process and reaps it.
    func kill() {
        current?.killAndReap()
    }

    /// The text all runs wrote to stderr (the log).
    var log: String { (try? String(contentsOfFile: logPrefix + ".err", encoding: .utf8)) ?? "" }

    /// A connected client (tests' own requests).
    func client() async throws -> StreamdClient {
        try await StreamdClient.connect(socketPath: socketPath, clientName: "crash-test")
    }
}
