import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `streamctl` as a user runs it, against a `streamd run` process on the embedded kpclientd.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct StreamctlProcessTests {
    init() throws {
        try Products.require()
    }

    @Test func exitCodesWithoutADaemonAndForBadUsage() async throws {
        let workspace = ProcessWorkspace()
        let nowhere = workspace.path + "/nobody/streamd.sock"
        let unreachable = try await workspace.run(Products.streamctl, ["status", "--socket", nowhere], label: "ctl")
        #expect(unreachable.status == 69, "\(unreachable)")
        #expect(unreachable.stderr.hasPrefix("streamctl: "), "\(unreachable)")
        // STREAMD_SOCKET is where streamctl looks without --socket.
        let fromEnvironment = try await workspace.run(
            Products.streamctl, ["list"], label: "ctl", environment: workspace.environment(["STREAMD_SOCKET": nowhere]))
        #expect(fromEnvironment.status == 69, "\(fromEnvironment)")
        #expect(fromEnvironment.stderr.contains(nowhere) || !fromEnvironment.stderr.isEmpty, "\(fromEnvironment)")

        for usage in [["open"], ["open", "x", "--multicast", "--address", "kps1abc"], ["frobnicate"], ["send"], ["status", "--bogus"]] {
            let result = try await workspace.run(Products.streamctl, usage + ["--socket", nowhere], label: "ctl")
            #expect(result.status == 64, "\(result)")
        }
        let help = try await workspace.run(Products.streamctl, ["--help"], label: "ctl")
        #expect(help.status == 0 && help.stdout.contains("69"), "\(help)")
    }

    @Test func everyCommandOnATwoWayStream() async throws {
        let workspace = ProcessWorkspace()
        let daemon = try await StreamdProcess.start(in: workspace, name: "d")
        defer { withExtendedLifetime(daemon) {} }

        // open: the address alone on the last line.
        let opened = try await daemon.ctl(["open", "alice"])
        try #require(opened.status == 0, "\(opened)")
        let address = try #require(opened.lines.last)
        #expect(address.hasPrefix("kps1") && !address.contains(" "), "\(opened)")
        #expect(opened.lines.count == 2 && opened.lines[0].contains("listener"), "\(opened)")

        let joined = try await daemon.ctl(["open", "bob", "--address", address])
        #expect(joined.status == 0 && joined.stdout == "joined bob as dialer\n", "\(joined)")

        let openedJSON = try await daemon.ctl(["open", "carol", "--json"])
        let created = try decodeJSON(CtlCreated.self, openedJSON)
        #expect(created.stream.name == "carol" && created.stream.role == "listener" && created.address.hasPrefix("kps1"))
        let addressJSON = try await daemon.ctl(["address", "alice", "--json"])
        #expect(addressJSON.stdout == "{\"address\":\"\(address)\"}\n", "\(addressJSON)")
        let addressText = try await daemon.ctl(["address", "alice"])
        #expect(addressText.stdout == address + "\n")

        // Refusals: exit 1 with the reason and its code.
        let missing = try await daemon.ctl(["status", "nobody"])
        #expect(missing.status == 1 && missing.stderr.contains("noSuchStream"), "\(missing)")
        let duplicate = try await daemon.ctl(["open", "alice"])
        #expect(duplicate.status == 1 && duplicate.stderr.contains("nameInUse"), "\(duplicate)")
        let badAddress = try await daemon.ctl(["open", "dave", "--address", "kps1garbage"])
        #expect(badAddress.status == 1 && badAddress.stderr.contains("invalidAddress"), "\(badAddress)")
        let notMulticast = try await daemon.ctl(["address", "alice", "--read-only"])
        #expect(notMulticast.status == 1 && notMulticast.stderr.contains("invalidArgument"), "\(notMulticast)")

        // list: the table and the JSON.
        let table = try await daemon.ctl(["list"])
        #expect(table.status == 0)
        #expect(table.lines.first?.split(separator: " ", omittingEmptySubsequences: true) == ["NAME", "ROLE", "STATE", "WRITTEN", "ACKED", "RECEIVED", "CONSUMED"])
        #expect(table.lines.dropFirst().map { $0.split(separator: " ").prefix(2).joined(separator: " ") } == ["alice listener", "bob dialer", "carol listener"], "\(table)")
        let listed = try decodeJSON([CtlStreamInfo].self, try await daemon.ctl(["list", "--json"]))
        #expect(listed.map(\.name) == ["alice", "bob", "carol"])
        #expect(listed.allSatisfy { $0.bytesWritten == 0 && !$0.writeClosed })

        // The daemon's status.
        let daemonStatus = try decodeJSON(CtlDaemonStatus.self, try await daemon.ctl(["status", "--json"]))
        #expect(daemonStatus.kpclientdConnected && daemonStatus.streams == 3 && daemonStatus.damaged == 0, "\(daemonStatus)")
        #expect(daemonStatus.kpclientd.contains("embedded") && daemonStatus.version.hasPrefix("streamd"))
        let daemonText = try await daemon.ctl(["status"])
        #expect(daemonText.stdout.contains("(connected)") && daemonText.stdout.contains("streams:     3"), "\(daemonText)")
        // One stream's status; --engine adds the engine's state, for debugging.
        let plain = try await daemon.ctl(["status", "alice"])
        #expect(plain.status == 0 && plain.stdout.contains("role:        listener") && !plain.stdout.contains("engine:"), "\(plain)")
        let detailed = try await daemon.ctl(["status", "alice", "--engine"])
        #expect(detailed.status == 0 && detailed.stdout.contains("engine:      unacked=") && detailed.stdout.contains("rto="), "\(detailed)")

        // alice → bob: 300 000 bytes (more than the 256 KiB write buffer), received by a running `recv`.
        let payload = testBytes(300_000, seed: 1)
        let payloadPath = workspace.file("payload")
        try writeBytes(payload, to: payloadPath)
        let receivedPath = workspace.file("received")
        let receiver = try workspace.spawn(
            Products.streamctl, ["recv", "bob", receivedPath, "--socket", daemon.socketPath], label: "recv-bob")
        let started = ContinuousClock.now
        let sent = try await daemon.ctl(["send", "alice", payloadPath, "--json"])
        try #require(sent.status == 0, "\(sent)")
        #expect(try decodeJSON(CtlSent.self, sent).sent == 300_000)
        // send returns once every byte is durable in streamd.
        let afterSend = try decodeJSON(CtlStreamInfo.self, try await daemon.ctl(["status", "alice", "--json"]))
        #expect(afterSend.bytesWritten == 300_000, "\(afterSend)")
        let closed = try await daemon.ctl(["close", "alice", "--json"])
        #expect(closed.status == 0 && closed.stdout == "{\"closed\":true}\n", "\(closed)")
        let receiverEnd = await receiver.wait(timeout: .seconds(120))
        let elapsed = ContinuousClock.now - started
        #expect(receiverEnd == .exited(0), "recv: \(receiver.standardError)")
        #expect(try readBytes(receivedPath) == payload, "recv wrote other bytes than were sent")
        print("process: 300000 bytes alice→bob by streamctl send/recv on the embedded kpclientd in \(elapsed)")

        // After close (waiting) the peer acknowledged everything.
        let aliceDone = try decodeJSON(CtlStreamInfo.self, try await daemon.ctl(["status", "alice", "--json"]))
        #expect(aliceDone.bytesAcked == 300_000 && aliceDone.writeClosed, "\(aliceDone)")
        let bobDone = try decodeJSON(CtlStreamInfo.self, try await daemon.ctl(["status", "bob", "--json"]))
        #expect(bobDone.bytesConsumed == 300_000 && bobDone.peerClosed, "\(bobDone)")
        let bobText = try await daemon.ctl(["status", "bob"])
        #expect(bobText.stdout.contains("name:        bob") && bobText.stdout.contains("300000 consumed"), "\(bobText)")

        // bob → alice with --sync, from stdin, socket given by STREAMD_SOCKET.
        let small = testBytes(5_000, seed: 2)
        let smallPath = workspace.file("small")
        try writeBytes(small, to: smallPath)
        let environment = workspace.environment(["STREAMD_SOCKET": daemon.socketPath])
        let synced = try await workspace.run(
            Products.streamctl, ["send", "bob", "--sync"], label: "send-sync", environment: environment, stdinPath: smallPath)
        #expect(synced.status == 0, "\(synced)")
        let bobSynced = try decodeJSON(
            CtlStreamInfo.self, try await workspace.run(Products.streamctl, ["status", "bob", "--json"], label: "ctl", environment: environment))
        #expect(bobSynced.bytesWritten == 5_000 && bobSynced.bytesAcked == 5_000, "--sync returned before the peer acknowledged: \(bobSynced)")
        let noWait = try await daemon.ctl(["close", "bob", "--no-wait"])
        #expect(noWait.status == 0 && noWait.stdout.isEmpty, "\(noWait)")
        let backPath = workspace.file("back")
        let back = try await daemon.ctl(["recv", "alice", backPath])
        #expect(back.status == 0, "\(back)")
        #expect(try readBytes(backPath) == small)
        // recv to stdout.
        let again = try await daemon.ctl(["recv", "alice"])
        #expect(again.status == 0 && again.stdout.isEmpty, "a second recv after the end should have nothing left: \(again)")

        // A closed direction refuses more data.
        let late = try await daemon.ctl(["send", "alice", smallPath])
        #expect(late.status == 1 && late.stderr.contains("closed"), "\(late)")

        // remove.
        let removed = try await daemon.ctl(["remove", "alice", "--json"])
        #expect(removed.status == 0 && removed.stdout == "{\"removed\":true}\n", "\(removed)")
        #expect(try await daemon.ctl(["remove", "bob"]).status == 0)
        let gone = try await daemon.ctl(["status", "alice"])
        #expect(gone.status == 1 && gone.stderr.contains("noSuchStream"), "\(gone)")
        let remaining = try decodeJSON([CtlStreamInfo].self, try await daemon.ctl(["list", "--json"]))
        #expect(remaining.map(\.name) == ["carol"])

        #expect(await daemon.stop() == .exited(0), "streamd did not exit cleanly: \(daemon.child.standardError.suffix(3000))")
        // Addresses are secrets: never in the daemon's log.
        let log = daemon.child.standardOutput + daemon.child.standardError
        #expect(log.contains("streamd ready"), "the daemon log was not captured: \(log.suffix(2000))")
        #expect(!log.contains(address) && !log.contains(created.address), "a stream address appears in the daemon's log")
        // Without a daemon, streamctl says so with 69.
        #expect(try await daemon.ctl(["list"]).status == 69)
    }

    @Test func multicastWriterAndReadOnlyReader() async throws {
        let workspace = ProcessWorkspace()
        let daemon = try await StreamdProcess.start(in: workspace, name: "m")
        defer { withExtendedLifetime(daemon) {} }

        let opened = try await daemon.ctl(["open", "news", "--multicast"])
        try #require(opened.status == 0, "\(opened)")
        let full = try #require(opened.lines.last)
        let readOnly = try await daemon.ctl(["address", "news", "--read-only"])
        try #require(readOnly.status == 0, "\(readOnly)")
        let readAddress = readOnly.stdout.trimmingSuffix()
        #expect(readAddress.hasPrefix("kps1") && readAddress != full)
        // The writer's address is refused for joining.
        let wrongKind = try await daemon.ctl(["open", "sneaky", "--address", full])
        #expect(wrongKind.status == 1 && wrongKind.stderr.contains("invalidAddress"), "\(wrongKind)")
        let joined = try await daemon.ctl(["open", "reader", "--address", readAddress, "--json"])
        let reader = try decodeJSON(CtlStreamInfo.self, joined)
        #expect(reader.role == "multicast_reader", "\(joined)")

        let payload = testBytes(40_000, seed: 3)
        let path = workspace.file("news")
        try writeBytes(payload, to: path)
        #expect(try await daemon.ctl(["send", "news", path, "--sync"]).status == 0)
        // A reader cannot write; the writer cannot read.
        let readerSend = try await daemon.ctl(["send", "reader", path])
        #expect(readerSend.status == 1 && readerSend.stderr.contains("readOnly"), "\(readerSend)")
        let writerRecv = try await daemon.ctl(["recv", "news"])
        #expect(writerRecv.status == 1 && writerRecv.stderr.contains("writeOnly"), "\(writerRecv)")
        #expect(try await daemon.ctl(["close", "news"]).status == 0)
        let outPath = workspace.file("news-received")
        let received = try await daemon.ctl(["recv", "reader", outPath])
        #expect(received.status == 0, "\(received)")
        #expect(try readBytes(outPath) == payload)
        let closeReader = try await daemon.ctl(["close", "reader"])
        #expect(closeReader.status == 1 && closeReader.stderr.contains("readOnly"), "\(closeReader)")
        #expect(await daemon.stop() == .exited(0))
    }

    @Test func pythonClientAgainstTheDaemonProcess() async throws {
        let python = Products.repositoryRoot + "/.venv/bin/python"
        guard access(python, X_OK) == 0 else {
            Issue.record("\(python) is missing: run scripts/python-venv from the repository root first")
            return
        }
        let workspace = ProcessWorkspace()
        let daemon = try await StreamdProcess.start(in: workspace, name: "py")
        defer { withExtendedLifetime(daemon) {} }
        let script = Products.repositoryRoot + "/Tests/interop/streamd_app.py"
        let result = try await workspace.run(
            python, [script, daemon.socketPath], label: "python", environment: workspace.environment(["INTEROP_TIMEOUT": "100"]),
            timeout: .seconds(120))
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("streamd_app: all checks passed"), "\(result)")
        #expect(await daemon.stop() == .exited(0))
    }
}

extension String {
    /// The text without trailing newlines.
    func trimmingSuffix() -> String {
        var text = self
        while text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}

/// `streamctl send` and `recv` ride out a crash of streamd (SIGKILL) and its restart.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct StreamdCrashProcessTests {
    init() throws {
        try Products.require()
    }

    @Test func sendAndRecvResumeAcrossADaemonCrash() async throws {
        let workspace = ProcessWorkspace()
        var daemon = try await StreamdProcess.start(in: workspace, name: "c")
        let opened = try await daemon.ctl(["open", "alice"])
        try #require(opened.status == 0, "\(opened)")
        let address = try #require(opened.lines.last)
        try #require(try await daemon.ctl(["open", "bob", "--address", address]).status == 0)

        let payload = testBytes(1 << 20, seed: 30)
        let payloadPath = workspace.file("payload")
        try writeBytes(payload, to: payloadPath)
        let receivedPath = workspace.file("received")
        let socket = ["--socket", daemon.socketPath]
        let receiver = try workspace.spawn(Products.streamctl, ["recv", "bob", receivedPath] + socket, label: "recv-bob")
        let sender = try workspace.spawn(Products.streamctl, ["send", "alice", payloadPath] + socket, label: "send-alice")

        // Crash streamd in the middle of the transfer.
        let midway = try await waitUntil(timeout: .seconds(60)) {
            let status = try await daemon.ctl(["status", "bob", "--json"])
            guard status.status == 0 else { return false }
            return try decodeJSON(CtlStreamInfo.self, status).bytesConsumed >= 100_000
        }
        try #require(midway != nil, "bob consumed nothing within 60 s")
        let before = try decodeJSON(CtlStreamInfo.self, try await daemon.ctl(["status", "alice", "--json"]))
        #expect(await daemon.child.kill() == .signaled(SIGKILL))
        #expect(sender.poll() == nil && receiver.poll() == nil, "send or recv gave up as soon as streamd died")
        let crashedAt = ContinuousClock.now
        daemon = try await StreamdProcess.start(in: workspace, name: "c")
        let restartedIn = ContinuousClock.now - crashedAt
        defer { withExtendedLifetime(daemon) {} }

        let sent = await sender.wait(timeout: .seconds(120))
        if sent == nil { await sender.kill() }
        #expect(sent == .exited(0), "send after the crash: \(sender.standardError)")
        #expect(try await daemon.ctl(["close", "alice"], timeout: .seconds(120)).status == 0)
        let received = await receiver.wait(timeout: .seconds(120))
        if received == nil { await receiver.kill() }
        #expect(received == .exited(0), "recv after the crash: \(receiver.standardError)")
        let bytes = try readBytes(receivedPath)
        #expect(bytes.count == payload.count && bytes == payload, "bob got \(bytes.count) bytes, not the 1 MiB sent (nothing may be lost or repeated)")
        let alice = try decodeJSON(CtlStreamInfo.self, try await daemon.ctl(["status", "alice", "--json"]))
        #expect(alice.bytesWritten == UInt64(payload.count) && alice.bytesAcked == UInt64(payload.count), "\(alice)")
        print("process: streamd SIGKILLed with alice at \(before.bytesWritten) written, bob at ≥100000 consumed; restarted in \(restartedIn); 1 MiB delivered intact")
        #expect(await daemon.stop() == .exited(0))
    }
}
