import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two `streamd` processes sharing one external `kpclientd-sim` process over TCP, as two hosts
/// sharing one mixnet would; then that kpclientd dies and comes back.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct ExternalKpclientdProcessTests {
    /// The simulator's flags: some latency and write loss; the box store in a state file so it
    /// survives the simulator's own restart.
    static func simulatorFlags(statePath: String) -> [String] {
        ["--latency", "5ms", "--write-loss", "0.1", "--state", statePath, "--log-level", "warning"]
    }

    /// A simulator and two daemons on it, with stream `x` on A and its peer `y` on B.
    struct Pair {
        var workspace: ProcessWorkspace
        var statePath: String
        var simulator: KpclientdSimProcess
        var a: StreamdProcess
        var b: StreamdProcess
        var address: String

        /// Addresses are secrets: neither daemon may log one.
        func expectNoAddressInLogs() {
            for daemon in [a, b] {
                let log = daemon.child.standardOutput + daemon.child.standardError
                #expect(!log.isEmpty && !log.contains(address), "a stream address appears in a daemon's log")
            }
        }
    }

    static func startPair() async throws -> Pair {
        try Products.require()
        let workspace = ProcessWorkspace()
        let statePath = workspace.path + "/pigeonhole.state"
        let simulator = try await KpclientdSimProcess.start(in: workspace, extra: simulatorFlags(statePath: statePath))
        let a = try await StreamdProcess.start(in: workspace, name: "a", kpclientd: simulator.dialAddress)
        let b = try await StreamdProcess.start(in: workspace, name: "b", kpclientd: simulator.dialAddress)
        // Both daemons are connected before streams are opened (create needs the box size).
        for daemon in [a, b] {
            let up = try await waitUntil(timeout: .seconds(30)) { try await Self.kpclientdConnected(daemon) == true }
            try #require(up != nil, "streamd did not connect to kpclientd-sim: \(daemon.child.standardError.suffix(3000))")
        }
        let opened = try await a.ctl(["open", "x"])
        try #require(opened.status == 0, "\(opened)")
        let address = try #require(opened.lines.last)
        let joined = try await b.ctl(["open", "y", "--address", address])
        try #require(joined.status == 0, "\(joined)")
        return Pair(workspace: workspace, statePath: statePath, simulator: simulator, a: a, b: b, address: address)
    }

    /// `kpclientd_connected` from `streamctl status --json`, or nil if the command failed.
    static func kpclientdConnected(_ daemon: StreamdProcess) async throws -> Bool? {
        let result = try await daemon.ctl(["status", "--json"], timeout: .seconds(20))
        guard result.status == 0 else { return nil }
        return try decodeJSON(CtlDaemonStatus.self, result).kpclientdConnected
    }

    @Test func twoDaemonsOneKpclientdBothDirections() async throws {
        let pair = try await Self.startPair()
        defer { withExtendedLifetime(pair.simulator) {} }
        let workspace = pair.workspace

        let payload = testBytes(512 * 1024, seed: 11)
        let payloadPath = workspace.file("payload")
        try writeBytes(payload, to: payloadPath)
        let receivedPath = workspace.file("received")
        let receiver = try workspace.spawn(Products.streamctl, ["recv", "y", receivedPath, "--socket", pair.b.socketPath], label: "recv-y")
        let started = ContinuousClock.now
        let sent = try await pair.a.ctl(["send", "x", payloadPath], timeout: .seconds(180))
        try #require(sent.status == 0, "\(sent)")
        let durable = ContinuousClock.now - started
        let closed = try await pair.a.ctl(["close", "x"], timeout: .seconds(180))
        #expect(closed.status == 0, "\(closed)")
        let end = await receiver.wait(timeout: .seconds(180))
        let elapsed = ContinuousClock.now - started
        if end == nil { await receiver.kill() }
        #expect(end == .exited(0), "recv on B: \(receiver.standardError)")
        let received = try readBytes(receivedPath)
        #expect(received.count == payload.count && received == payload, "B received \(received.count) bytes, not the 524288 sent")
        print("process: 512 KiB A→B over external kpclientd-sim (5ms, 10% write loss): send durable in \(durable), received and closed in \(elapsed)")

        // B → A, a small file.
        let small = testBytes(3_000, seed: 12)
        let smallPath = workspace.file("small")
        try writeBytes(small, to: smallPath)
        #expect(try await pair.b.ctl(["send", "y", smallPath, "--sync"], timeout: .seconds(120)).status == 0)
        #expect(try await pair.b.ctl(["close", "y", "--no-wait"]).status == 0)
        let backPath = workspace.file("back")
        let back = try await pair.a.ctl(["recv", "x", backPath], timeout: .seconds(120))
        #expect(back.status == 0, "\(back)")
        #expect(try readBytes(backPath) == small)

        let x = try decodeJSON(CtlStreamInfo.self, try await pair.a.ctl(["status", "x", "--json"]))
        #expect(x.state == "closed" && x.bytesAcked == 512 * 1024 && x.bytesConsumed == 3_000, "\(x)")

        #expect(await pair.a.stop() == .exited(0), "A: \(pair.a.child.standardError.suffix(3000))")
        #expect(await pair.b.stop() == .exited(0), "B: \(pair.b.child.standardError.suffix(3000))")
        #expect(await pair.simulator.child.terminate() == .exited(0))
        pair.expectNoAddressInLogs()
    }

    @Test func kpclientdGoesAwayAndComesBack() async throws {
        let pair = try await Self.startPair()
        let workspace = pair.workspace
        // Warm up: the stream carries data before the failure.
        let warm = testBytes(2_000, seed: 20)
        let warmPath = workspace.file("warm")
        try writeBytes(warm, to: warmPath)
        #expect(try await pair.a.ctl(["send", "x", warmPath, "--sync"], timeout: .seconds(120)).status == 0)

        // kpclientd dies.
        await pair.simulator.child.kill()
        let killed = ContinuousClock.now
        let noticed = try await waitUntil(timeout: .seconds(30)) { try await Self.kpclientdConnected(pair.a) == false }
        try #require(noticed != nil, "A still reports kpclientd connected 30 s after it was killed")
        let statusText = try await pair.a.ctl(["status"])
        #expect(statusText.stdout.contains("(DOWN)"), "\(statusText)")

        // Writes are still accepted while kpclientd is away (up to the 256 KiB buffer).
        let payload = testBytes(200 * 1024, seed: 21)
        let payloadPath = workspace.file("payload")
        try writeBytes(payload, to: payloadPath)
        let sent = try await pair.a.ctl(["send", "x", payloadPath, "--json"], timeout: .seconds(60))
        #expect(sent.status == 0, "send while kpclientd is down: \(sent)")
        let closing = try await pair.a.ctl(["close", "x", "--no-wait"], timeout: .seconds(60))
        #expect(closing.status == 0, "close --no-wait while kpclientd is down: \(closing)")
        let receivedPath = workspace.file("received")
        let receiver = try workspace.spawn(Products.streamctl, ["recv", "y", receivedPath, "--socket", pair.b.socketPath], label: "recv-y")

        // A realistic outage: several of the thin client's reconnection attempts fail meanwhile.
        try await Task.sleep(for: .seconds(5))
        let stillDown = try await Self.kpclientdConnected(pair.b)
        #expect(stillDown == false, "B reports kpclientd connected while it is down")

        // kpclientd comes back on the same port with the same box store.
        let restarted = try await KpclientdSimProcess.start(
            in: workspace, port: pair.simulator.port, extra: Self.simulatorFlags(statePath: pair.statePath))
        defer { withExtendedLifetime(restarted) {} }
        let restartedAt = ContinuousClock.now
        // Both measured from the restart.
        var aBack: Duration?
        var bBack: Duration?
        _ = try await waitUntil(timeout: .seconds(90)) {
            if aBack == nil, try await Self.kpclientdConnected(pair.a) == true { aBack = ContinuousClock.now - restartedAt }
            if bBack == nil, try await Self.kpclientdConnected(pair.b) == true { bBack = ContinuousClock.now - restartedAt }
            return aBack != nil && bBack != nil
        }
        #expect(aBack != nil, "A did not reconnect to kpclientd within 90 s: \(pair.a.child.standardError.suffix(3000))")
        #expect(bBack != nil, "B did not reconnect to kpclientd within 90 s: \(pair.b.child.standardError.suffix(3000))")
        let end = await receiver.wait(timeout: .seconds(150))
        let delivered = ContinuousClock.now - restartedAt
        if end == nil { await receiver.kill() }
        #expect(end == .exited(0), "recv on B did not finish after kpclientd came back: \(receiver.standardError)")
        let received = (try? readBytes(receivedPath)) ?? []
        #expect(received == warm + payload, "B received \(received.count) bytes, want \(warm.count + payload.count)")
        let x = try decodeJSON(CtlStreamInfo.self, try await pair.a.ctl(["status", "x", "--json"]))
        print(
            "process: kpclientd killed; A noticed in \(noticed.map { "\($0)" } ?? "-") (down for \(restartedAt - killed)); after restart A reconnected in \(aBack.map { "\($0)" } ?? "-"), B in \(bBack.map { "\($0)" } ?? "-"), 200 KiB delivered in \(delivered); x: \(x)"
        )

        #expect(await pair.a.stop() == .exited(0))
        #expect(await pair.b.stop() == .exited(0))
        #expect(await restarted.child.terminate() == .exited(0))
        pair.expectNoAddressInLogs()
    }
}
