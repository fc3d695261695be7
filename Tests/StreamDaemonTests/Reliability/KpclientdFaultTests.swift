import Foundation
import IPC
import StreamClient
import StreamCrypto
import Testing

/// kpclientd faults (issue 10), all through an external `kpclientd-sim` process: dropped
/// connections, a simulator restart with and without its box store, and a 10× latency spike, each
/// during a `streamctl send --sync` / `streamctl recv` transfer between two `streamd` processes.
/// Every transfer must complete with the sent bytes; the time from the end of the fault to the
/// next byte received is reported.
///
/// Courier churn runs under kpclientd-sim's network model (`--profile testnet --speedup 50`, a
/// courier leaving every 5 s on average): ARQs on a departed courier hang until streamd's
/// deadlines cancel and re-encrypt them.
///
/// `STREAMD_RELIABILITY=full`: 2 MiB per transfer (CI: 256 KiB).
@Suite(.serialized, .timeLimit(.minutes(30)))
struct KpclientdFaultTests {
    enum Fault: String, CaseIterable {
        case disconnects = "disconnect-every"
        case restartWithState = "restart with --state"
        case restartWithoutState = "restart without --state"
        case latencySpike = "10x latency spike"
        case courierChurn = "courier churn"
    }

    static let latency = 5

    /// Runs one transfer under `fault`; returns the transfer time and the recovery time after the fault.
    static func transfer(under fault: Fault) async throws -> (elapsed: Duration, recovery: Duration?) {
        let rig = CrashRig()
        var random = SeededGenerator(seed: Reliability.seed())
        let size = Reliability.size(quick: 256 << 10, full: 2 << 20)
        let persistent = fault != .restartWithoutState
        let extra: [String]
        switch fault {
        case .disconnects: extra = ["--disconnect-every", "1s"]
        case .courierChurn: extra = ["--profile", "testnet", "--speedup", "50", "--courier-churn", "5s"]
        default: extra = []
        }
        try await rig.startSimulator(latency: "\(latency)ms", writeLoss: 0, persistent: persistent, extraSimulatorArguments: extra)
        let port = try #require(Int(rig.kpclientdAddress.split(separator: ":").last ?? ""))
        let a = try rig.daemon("a")
        let b = try rig.daemon("b")
        try await a.start()
        try await b.start()
        try await rig.openStreamPair(writer: a, reader: b)
        let input = try rig.randomFile("input.bin", count: size, generator: &random)
        let output = rig.path + "/output.bin"
        let clock = ContinuousClock()
        let began = clock.now
        let send = try rig.startStreamctl(["send", "out", input.path, "--sync", "--reconnect-timeout", "300", "--quiet", "--socket", a.socketPath], name: "send")
        let recv = try rig.startStreamctl(["recv", "in", output, "--reconnect-timeout", "300", "--quiet", "--socket", b.socketPath], name: "recv")
        let observer = try await b.client()
        let received = { (try? await observer.status("in").bytesReceived) ?? 0 }

        var recovery: Duration?
        // Disconnects and churn recur through the run: they have no single end to recover from.
        if fault != .disconnects && fault != .courierChurn {
            // The fault hits once a quarter of the bytes arrived.
            _ = await waitUntil(timeout: .seconds(120)) { await received() >= UInt64(size / 4) }
            rig.simulator?.killAndReap()
            switch fault {
            case .restartWithState, .restartWithoutState:
                try await Task.sleep(for: .seconds(1))
                try await rig.startSimulator(latency: "\(latency)ms", writeLoss: 0, port: port, persistent: persistent)
            case .latencySpike:
                try await rig.startSimulator(latency: "\(latency * 10)ms", writeLoss: 0, port: port)
                try await Task.sleep(for: .seconds(Reliability.size(quick: 3, full: 10)))
                rig.simulator?.killAndReap()
                try await rig.startSimulator(latency: "\(latency)ms", writeLoss: 0, port: port)
            case .disconnects, .courierChurn:
                break  // Not reached.
            }
            let restored = clock.now
            let before = await received()
            if await waitUntil(timeout: .seconds(120), { await received() > before || send.exitCode != nil && recv.exitCode != nil }) != nil {
                recovery = clock.now - restored
            }
        }
        let sent = await send.wait(timeout: .seconds(300))?.exitCode
        #expect(sent == 0, "[\(fault.rawValue)] streamctl send: \(send.standardError.suffix(800))")
        // A close that does not finish is recorded, not thrown, so that the daemons' logs below are printed.
        var closeFailure: String?
        do {
            let closed = try await rig.streamctl(["close", "out", "--socket", a.socketPath], name: "close", timeout: .seconds(120))
            if closed.code != 0 { closeFailure = "exit code \(closed.code)" }
        } catch {
            closeFailure = "\(error)"
        }
        #expect(closeFailure == nil, "[\(fault.rawValue)] streamctl close: \(closeFailure ?? "")")
        let got = await recv.wait(timeout: .seconds(180))?.exitCode
        #expect(got == 0, "[\(fault.rawValue)] streamctl recv: \(recv.standardError.suffix(800))")
        let elapsed = clock.now - began
        await observer.close()
        let bytes = [UInt8]((try? Data(contentsOf: URL(fileURLWithPath: output))) ?? Data())
        let intact = SHA256.hash(bytes) == SHA256.hash(input.bytes)
        #expect(intact, "[\(fault.rawValue)] received \(bytes.count) of \(size) bytes, SHA-256 differs")
        if !intact || sent != 0 || got != 0 || closeFailure != nil {
            // Each end's engine (frames, reads, timers) says where a transfer is stuck.
            let writer = try? await rig.streamctl(["status", "out", "--engine", "--socket", a.socketPath], name: "status-out", timeout: .seconds(20))
            let reader = try? await rig.streamctl(["status", "in", "--engine", "--socket", b.socketPath], name: "status-in", timeout: .seconds(20))
            print("[\(fault.rawValue)] writer:\n\(writer?.output ?? "no status")\nreader:\n\(reader?.output ?? "no status")")
            print("[\(fault.rawValue)] streamd a log:\n\(a.log.suffix(3000))\nstreamd b log:\n\(b.log.suffix(3000))")
        }
        let recoveryText = recovery.map { "\(Int(milliseconds($0))) ms" } ?? "n/a"
        Reliability.report("kpclientd-faults", "\(fault.rawValue): bytes=\(size) completed=\(intact && sent == 0 && got == 0) "
            + "transfer \(String(format: "%.1f", seconds(elapsed))) s, fault end to next byte received: \(recoveryText)")
        return (elapsed, recovery)
    }

    @Test(.enabled(if: Products.available, "needs swift build"), arguments: Fault.allCases)
    func transferCompletesAcross(_ fault: Fault) async throws {
        _ = try await Self.transfer(under: fault)
    }
}
