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
    let children = ChildProcesses()
    private(set) var kpclientdAddress = ""

    var path: String { directory.path }

    /// Starts `kpclientd-sim` on a TCP port (0: an ephemeral one) with its box store in a file
    /// (`persistent: false`: in memory only, as `kpclientd-sim` without `--state`).
    func startSimulator(
        latency: String = "2ms", writeLoss: Double = 0.1, port: Int = 0, persistent: Bool = true, extraSimulatorArguments: [String] = []
    ) async throws {
        let state = persistent ? ["--state", path + "/pigeonhole.state"] : []
        let child = try spawn(
            Products.kpclientdSim,
            ["--listen", "tcp:127.0.0.1:\(port)", "--latency", latency, "--write-loss", "\(writeLoss)", "--log-level", "warning"]
                + state + extraSimulatorArguments,
            name: "kpclientd-sim", logPrefix: path + "/kpclientd-sim")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            // The output file is shared by every simulator this rig started: take the new line.
            let lines = child.standardOutput.split(separator: "\n").filter { $0.contains("listening on ") }
            if lines.count > simulatorStarts, let line = lines.last, let range = line.range(of: "listening on ") {
                simulatorStarts = lines.count
                kpclientdAddress = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
                return
            }
            if let code = child.exitCode {
                throw ProcessHarnessError(description: "kpclientd-sim exited with \(code): \(child.standardError)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ProcessHarnessError(description: "kpclientd-sim did not report its address in 20 s")
    }

    /// How many simulators reported their address (their output is appended to one file).
    private var simulatorStarts = 0

    /// The simulator process (the last one started).
    private(set) var simulator: ChildProcess?

    /// Starts a child whose stdout and stderr are appended to `logPrefix.out` / `.err`; killed with the rig.
    func spawn(_ executable: String, _ arguments: [String], name: String, logPrefix: String) throws -> ChildProcess {
        let child = try ChildProcess.spawn(
            executable, arguments, label: name, environment: ProcessInfo.processInfo.environment,
            stdoutPath: logPrefix + ".out", stderrPath: logPrefix + ".err", appendOutput: true)
        children.add(child)
        if name == "kpclientd-sim" { simulator = child }
        return child
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
        return DaemonProcess(name: name, directory: path + "/" + name, kpclientd: kpclientdAddress, extraArguments: extra, rig: self)
    }

    /// Runs `streamctl` in the background.
    func startStreamctl(_ arguments: [String], name: String) throws -> ChildProcess {
        try spawn(Products.streamctl, arguments, name: name, logPrefix: path + "/" + name)
    }

    /// Opens stream `out` on `writer` and joins it as `in` on `reader` (which may be the same
    /// daemon) with `streamctl`, as a user would.
    func openStreamPair(writer: DaemonProcess, reader: DaemonProcess) async throws {
        let opened = try await streamctl(["open", "out", "--socket", writer.socketPath], name: "open-out")
        guard opened.code == 0, let address = opened.output.split(separator: "\n").last.map(String.init) else {
            throw ProcessHarnessError(description: "streamctl open out failed: \(opened.output)")
        }
        let joined = try await streamctl(["open", "in", "--address", address, "--socket", reader.socketPath], name: "open-in")
        guard joined.code == 0 else { throw ProcessHarnessError(description: "streamctl open in failed: \(joined.output)") }
    }

    /// Runs `streamctl` to completion (bounded by `timeout`); returns exit code and stdout.
    func streamctl(_ arguments: [String], name: String, timeout: Duration = .seconds(60)) async throws -> (code: Int32, output: String) {
        let child = try startStreamctl(arguments, name: name)
        guard let code = await child.wait(timeout: timeout)?.exitCode else {
            child.killAndReap()
            throw ProcessHarnessError(description: "streamctl \(arguments.first ?? "") did not finish in \(timeout): \(child.standardError)")
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
    private let rig: CrashRig
    private let logPrefix: String
    private(set) var current: ChildProcess?
    private(set) var starts = 0
    /// Restart (exec) to ready (socket answers a status request) of every start.
    private(set) var readyTimes: [Duration] = []

    init(name: String, directory: String, kpclientd: String, extraArguments: [String], rig: CrashRig) {
        self.name = name
        socketPath = directory + "/run/streamd.sock"
        stateDirectory = directory + "/state"
        logPrefix = directory + "-streamd"
        self.rig = rig
        arguments = ["run", "--socket", socketPath, "--state-dir", stateDirectory, "--kpclientd", kpclientd, "--log-level", "info"] + extraArguments
    }

    /// Starts the process (without waiting for readiness).
    @discardableResult
    func spawn() throws -> ChildProcess {
        let child = try rig.spawn(Products.streamd, arguments, name: name, logPrefix: logPrefix)
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
                throw ProcessHarnessError(description: "streamd \(name) exited with \(code) before it was ready: \(child.standardError.suffix(2000))")
            }
            if let client = try? await StreamdClient.connect(socketPath: socketPath, clientName: "crash-test") {
                let status = try? await client.daemonStatus()
                await client.close()
                if status != nil { return }
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ProcessHarnessError(description: "streamd \(name) was not ready within \(timeout)")
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
