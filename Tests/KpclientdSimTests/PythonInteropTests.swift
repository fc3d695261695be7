import Foundation
import KpclientdSim
import Testing

/// The real Python thin client (PyPI `katzenpost-thinclient==0.0.25`) as the judge of the wire
/// format: each test starts the simulator in-process and runs one script of `Tests/interop/`.
///
/// Requires `.venv/` at the repository root: run `scripts/python-venv` once.
@Suite(.serialized)
struct PythonInteropTests {
    static let python = TestSupport.repositoryRoot.appendingPathComponent(".venv/bin/python")

    /// Runs `script` against `sim` (dialled with `dial`), failing with its output unless it exits 0.
    static func run(_ script: String, dial: String, timeout: Duration = .seconds(120), whileRunning: (@Sendable () async throws -> Void)? = nil) async throws {
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            Issue.record("Python interop needs \(python.path): run scripts/python-venv from the repository root first")
            return
        }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let toml = directory.appendingPathComponent("thinclient.toml")
        try dial.write(to: toml, atomically: true, encoding: .utf8)
        let outputURL = directory.appendingPathComponent("output.txt")
        _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
        let output = try FileHandle(forWritingTo: outputURL)
        defer { try? output.close() }

        let process = Process()
        process.executableURL = python
        process.arguments = [TestSupport.repositoryRoot.appendingPathComponent("Tests/interop/\(script)").path, toml.path]
        process.currentDirectoryURL = TestSupport.repositoryRoot.appendingPathComponent("Tests/interop")
        var environment = ProcessInfo.processInfo.environment
        environment["INTEROP_TIMEOUT"] = "\(Int(timeout.components.seconds) - 10)"
        process.environment = environment
        process.standardOutput = output
        process.standardError = output
        let exited = AsyncStream<Int32>.makeStream()
        process.terminationHandler = { p in
            exited.continuation.yield(p.terminationStatus)
            exited.continuation.finish()
        }
        try process.run()
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            process.terminate()
        }
        if let whileRunning {
            do { try await whileRunning() } catch {
                process.terminate()
                Issue.record("driver failed: \(error)")
            }
        }
        var status: Int32 = -1
        for await s in exited.stream { status = s }
        watchdog.cancel()
        let text = (try? String(contentsOf: outputURL, encoding: .utf8)) ?? ""
        #expect(status == 0, "\(script) exited with \(status):\n\(text.suffix(12_000))")
    }

    static func tcpDial(_ sim: KpclientdSimulator) -> String {
        guard case .tcp(let host, let port) = sim.listenAddress else { return "" }
        return "[Dial.Tcp]\nAddress = \"\(host):\(port)\"\nNetwork = \"tcp\"\n"
    }

    @Test func handshakeGeometryPKIAndKeys() async throws {
        try await TestSupport.withSimulator { sim in try await Self.run("handshake.py", dial: Self.tcpDial(sim)) }
    }

    @Test func pigeonholeWriteReadFlagsAndTombstones() async throws {
        try await TestSupport.withSimulator { sim in try await Self.run("pigeonhole.py", dial: Self.tcpDial(sim)) }
    }

    @Test func handshakeAndPigeonholeUnderTheTestnetProfile() async throws {
        var configuration = TestSupport.configuration()
        KpclientdSimProfile.testnet.apply(to: &configuration, speedup: 100)  // two couriers, λP published, the network model
        try await TestSupport.withSimulator(configuration) { sim in
            try await Self.run("handshake.py", dial: Self.tcpDial(sim))
            try await Self.run("pigeonhole.py", dial: Self.tcpDial(sim))
            #expect(await sim.statistics().sendTicks > 0)
        }
    }

    @Test func copyCommands() async throws {
        try await TestSupport.withSimulator { sim in try await Self.run("copy_command.py", dial: Self.tcpDial(sim)) }
    }

    @Test func echoAndCancel() async throws {
        try await TestSupport.withSimulator { sim in try await Self.run("echo_cancel.py", dial: Self.tcpDial(sim)) }
    }

    @Test func oneKeyResponseFramesAreAcceptedToo() async throws {
        var configuration = TestSupport.configuration()
        configuration.goStyleResponses = false
        try await TestSupport.withSimulator(configuration) { sim in try await Self.run("pigeonhole.py", dial: Self.tcpDial(sim)) }
    }

    @Test func reconnectResumesSessionAndReplaysInFlightRead() async throws {
        try await TestSupport.withSimulator { sim in
            try await Self.run("reconnect.py", dial: Self.tcpDial(sim)) {
                try await TestSupport.eventually("the Python read to be blocked in the simulator") {
                    await sim.statistics().blockedReads == 1
                }
                await sim.disconnectAllClients()
            }
            #expect(await sim.statistics().duplicatedReplays >= 1)  // the replay is a second ARQ, as in the daemon
        }
    }

    @Test func shutdownIsReportedAsGraceful() async throws {
        try await TestSupport.withSimulator { sim in
            try await Self.run("shutdown.py", dial: Self.tcpDial(sim)) {
                try await TestSupport.eventually("the Python client's session token") { await sim.statistics().framesReceived >= 1 }
                await sim.shutdown()
            }
        }
    }

    @Test func unixSocketTransport() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = TestSupport.configuration()
        let path = directory.appendingPathComponent("kpclientd.sock").path
        configuration.listen = .unix(path: path)
        try await TestSupport.withSimulator(configuration) { sim in
            #expect(sim.listenAddress == .unix(path: path))
            try await Self.run("handshake.py", dial: "[Dial.Unix]\nAddress = \"\(path)\"\n")
            try await Self.run("pigeonhole.py", dial: "[Dial.Unix]\nAddress = \"\(path)\"\n")
        }
    }

    @Test func abstractSocketTransport() async throws {
        var configuration = TestSupport.configuration()
        let name = "kpclientd-sim-test-\(UUID().uuidString.prefix(8))"
        configuration.listen = .abstract(name: name)
        try await TestSupport.withSimulator(configuration) { _ in
            try await Self.run("handshake.py", dial: "[Dial.Unix]\nAddress = \"@\(name)\"\n")
        }
    }
}
