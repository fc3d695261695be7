import Foundation
import IPC
import StreamClient
import StreamDaemon
import StreamStore
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Disk faults (issue 10): ENOSPC while writing, EIO from fsync and a state directory that turns
/// read-only, through the fault VFS (in process) and for real (a small tmpfs that fills up, a
/// read-only remount, both in a private mount namespace; root only). In every case the app gets a
/// clear error, streamd stops with a storage failure (its rule: a failed commit is fatal), restarts
/// while the fault lasts fail without losing anything, and once the fault clears a restart brings
/// back every acknowledged byte, intact.
@Suite(.serialized, .timeLimit(.minutes(20)))
struct DiskFaultTests {
    enum VFSFault: String, CaseIterable {
        case enospcOnWrite = "ENOSPC on write"
        case eioOnFsync = "EIO on fsync"
    }

    /// Reads `count` bytes of the pattern of stream `index` from `name`, checking each byte.
    static func readBack(_ client: StreamdClient, _ name: String, stream: Int, count: UInt64) async throws -> UInt64 {
        var position: UInt64 = 0
        let deadline = ContinuousClock.now + .seconds(60)
        while position < count, ContinuousClock.now < deadline {
            // Not a waiting read: the deadline must hold even if nothing more arrives.
            let (start, bytes, _) = try await client.read(name, offset: position, wait: false)
            if bytes.isEmpty {
                try await Task.sleep(for: .milliseconds(50))
                continue
            }
            #expect(start == position)
            if let bad = StreamPattern.firstMismatch(stream: stream, offset: start, bytes: bytes) {
                Issue.record("\(name): wrong byte at \(bad)")
                return position
            }
            position += UInt64(bytes.count)
            // Consume what was checked: the daemon buffers at most `max_read_buffer` unconsumed
            // bytes per stream and stops reading the peer's boxes beyond that (flow control).
            try await client.consume(name, through: position)
        }
        return position
    }

    @Test(arguments: VFSFault.allCases)
    func throughTheFaultVFS(_ fault: VFSFault) async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        var faults = try StoreFaultInjector()
        var daemon = try await DaemonHarness.start(configuration, storeFaults: faults)
        var client = try await daemon.client()
        let (_, address) = try await client.create("out")
        _ = try await client.join("in", address: address)
        let acknowledged = try await client.send("out", bytes: StreamPattern.bytes(stream: 1, offset: 0, count: 40_000), at: 0)

        // The fault: the app's next write fails with a clear error, the daemon stops (exit 1 as a process).
        switch fault {
        case .enospcOnWrite: faults.failWrite(nth: 1, with: .diskFull)
        case .eioOnFsync: faults.failSync(nth: 1, with: .ioError)
        }
        var seen = "acknowledged"
        do {
            _ = try await client.write("out", offset: acknowledged, data: StreamPattern.bytes(stream: 1, offset: acknowledged, count: 1_000))
            Issue.record("[\(fault.rawValue)] a write was acknowledged although its commit failed")
        } catch let error as IPCError {
            seen = "IPC error \(error.code): \(error.message)"
        } catch {
            seen = "connection ended: \(error)"
        }
        let ended = await daemon.stop()
        await client.close()
        #expect(throws: (any Error).self) { try ended.get() }
        let stopReason: String
        if case .failure(let error) = ended { stopReason = "\(error)" } else { stopReason = "clean exit" }
        Reliability.report("disk-faults", "vfs \(fault.rawValue): the app sees: \(seen)")
        Reliability.report("disk-faults", "vfs \(fault.rawValue): streamd stops with: \(stopReason.prefix(200))")

        // A crash loop while the fault lasts: every start fails or stops at its first commit; nothing is lost.
        var loop: [String] = []
        for _ in 0..<3 {
            faults = try StoreFaultInjector()
            switch fault {
            case .enospcOnWrite: faults.failWrite(nth: 1, with: .diskFull)
            case .eioOnFsync: faults.failSync(nth: 1, with: .ioError)
            }
            do {
                let attempt = try await DaemonHarness.start(configuration, storeFaults: faults)
                let probe = try? await attempt.client()
                _ = try? await probe?.write("out", offset: acknowledged, data: [1])
                await probe?.close()
                let result = await attempt.stop()
                loop.append((try? result.get()) == nil ? "started, stopped at its first commit" : "started and stopped cleanly")
            } catch {
                loop.append("refused to start: \("\(error)".prefix(120))")
            }
        }
        Reliability.report("disk-faults", "vfs \(fault.rawValue): restarts while the fault lasts: \(loop.joined(separator: "; "))")

        // The fault clears: a restart recovers every acknowledged byte and works again.
        daemon = try await DaemonHarness.start(configuration)
        client = try await daemon.client()
        let status = try await client.status("out")
        #expect(status.bytesWritten >= acknowledged)
        let more = try await client.send("out", bytes: StreamPattern.bytes(stream: 1, offset: status.bytesWritten, count: 5_000), at: status.bytesWritten)
        let got = try await Self.readBack(client, "in", stream: 1, count: more)
        #expect(got == more)
        Reliability.report("disk-faults", "vfs \(fault.rawValue): after the fault cleared: \(acknowledged) acknowledged bytes kept, "
            + "\(got) of \(more) read back intact, new writes accepted")
        await client.close()
        let stopped = await daemon.stop()
        #expect(throws: Never.self) { try stopped.get() }
    }

    static var canMount: Bool { getuid() == 0 && access("/usr/bin/unshare", X_OK) == 0 && access("/usr/bin/nsenter", X_OK) == 0 }

    /// A private mount namespace held by a sleeping `unshare` process, with a small tmpfs on `mountPoint`.
    final class MountNamespace: Sendable {
        let holder: ChildProcess
        let mountPoint: String
        let workspace: ProcessWorkspace

        init(workspace: ProcessWorkspace, mountPoint: String, sizeKiB: Int) async throws {
            self.workspace = workspace
            self.mountPoint = mountPoint
            mkdir(mountPoint, 0o700)
            holder = try workspace.spawn(
                "/usr/bin/unshare",
                ["--mount", "--propagation", "private", "/bin/sh", "-c",
                 "mount -t tmpfs -o size=\(sizeKiB)k,mode=0700 streamd-test \(mountPoint) && echo mounted && exec sleep 3600"],
                label: "mount-namespace")
            guard await waitUntil(timeout: .seconds(10), { holder.standardOutput.contains("mounted") }) != nil else {
                throw ProcessHarnessError(description: "could not mount a tmpfs: \(holder.standardError)")
            }
        }

        /// A path inside the namespace, as seen from outside (`/proc/PID/root`).
        func inside(_ path: String) -> String { "/proc/\(holder.pid)/root\(path)" }

        /// Runs `command` in the namespace (nsenter) to its end.
        func run(_ executable: String, _ arguments: [String], label: String) async throws -> CommandResult {
            try await workspace.run("/usr/bin/nsenter", ["-t", "\(holder.pid)", "-m", executable] + arguments, label: label)
        }

        /// Starts `streamd run` in the namespace.
        func streamd(_ arguments: [String], label: String) throws -> ChildProcess {
            try workspace.spawn("/usr/bin/nsenter", ["-t", "\(holder.pid)", "-m", Products.streamd] + arguments, label: label)
        }

        deinit { holder.killAndReap() }
    }

    /// Fills the file system holding `path` with one file, until ENOSPC; returns the bytes written.
    static func fill(_ path: String) -> Int {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        let block = [UInt8](repeating: 0x5A, count: 4096)
        var total = 0
        while true {
            let count = block.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { return total }
            total += count
        }
    }

    /// Needs root (a private mount namespace); about 15 s, so CI runs it too.
    @Test(.enabled(if: Products.available && Self.canMount, "root, unshare, nsenter, swift build"),
          .timeLimit(.minutes(8)))
    func aRealFullDiskAndAReadOnlyStateDirectory() async throws {
        let workspace = ProcessWorkspace()
        let state = workspace.path + "/state"
        let socket = workspace.path + "/run/streamd.sock"
        let namespace = try await MountNamespace(workspace: workspace, mountPoint: state, sizeKiB: 12 * 1024)
        let arguments = ["run", "--socket", socket, "--state-dir", state, "--kpclientd", "embedded", "--log-level", "info"]
        func ctl(_ args: [String]) async throws -> CommandResult {
            try await workspace.run(Products.streamctl, args + ["--socket", socket], label: "streamctl-\(args.first ?? "")", timeout: .seconds(30))
        }
        let started = Mutex<[ChildProcess]>([])
        defer {
            for child in started.withLock({ $0 }) {
                print("[disk-faults] \(child.label) log tail:\n\(child.standardError.split(separator: "\n").suffix(6).joined(separator: "\n"))")
            }
        }
        func startDaemon(_ label: String) async throws -> ChildProcess? {
            let child = try namespace.streamd(arguments, label: label)
            started.withLock { $0.append(child) }
            let ready = await waitUntil(timeout: .seconds(15)) {
                if child.poll() != nil { return true }
                return (try? await ctl(["status"]))?.status == 0
            }
            if ready == nil || child.poll() != nil { return nil }
            return child
        }
        /// Writes the pattern from where streamd has the stream up to `end` (after a partly failed send).
        func topUp(to end: UInt64) async throws {
            let client = try await StreamdClient.connect(socketPath: socket, clientName: "disk-faults")
            let from = try await client.status("out").bytesWritten
            if from < end { _ = try await client.send("out", bytes: StreamPattern.bytes(stream: 2, offset: from, count: Int(end - from)), at: from) }
            await client.close()
        }
        func lastLogLine(_ child: ChildProcess) -> String {
            let lines = child.standardError.split(separator: "\n")
            let line = lines.last { $0.contains("error") || $0.contains("critical") } ?? lines.last
            return line.map { String($0.suffix(220)) } ?? "(nothing logged)"
        }

        // Healthy: a stream with acknowledged bytes (send --sync returns only when they are durable).
        var daemon = try #require(try await startDaemon("streamd-1"))
        let opened = try await ctl(["open", "out"])
        try #require(opened.status == 0, "\(opened)")
        let address = try #require(opened.lines.last)
        #expect(try await ctl(["open", "in", "--address", address]).status == 0)
        let first = workspace.file("first.bin")
        try writeBytes(StreamPattern.bytes(stream: 2, offset: 0, count: 64 << 10), to: first)
        #expect(try await ctl(["send", "out", first, "--quiet"]).status == 0)
        let acknowledged = UInt64(64 << 10)

        // 1. The disk fills up (another file takes every free block).
        let filler = namespace.inside(state + "/filler")
        let filled = Self.fill(filler)
        let second = workspace.file("second.bin")
        try writeBytes(StreamPattern.bytes(stream: 2, offset: acknowledged, count: 256 << 10), to: second)
        let refused = try await ctl(["send", "out", second, "--quiet", "--reconnect-timeout", "0"])
        let exited = await daemon.wait(timeout: .seconds(20))
        Reliability.report("disk-faults", "tmpfs full (\(filled >> 10) KiB filler): streamctl send exit \(refused.status): "
            + "\(refused.stderr.split(separator: "\n").last.map(String.init) ?? "")")
        Reliability.report("disk-faults", "tmpfs full: streamd \(exited.map { "\($0)" } ?? "still running"); log: \(lastLogLine(daemon))")
        #expect(exited == .exited(1) || exited == nil)
        if exited == nil { await daemon.terminate() }

        // 2. Restarts while the disk is still full lose nothing.
        var loop: [String] = []
        for attempt in 0..<3 {
            if let child = try await startDaemon("streamd-full-\(attempt)") {
                let status = try await ctl(["status", "out", "--json"])
                loop.append("ready (status exit \(status.status))")
                await child.terminate(timeout: .seconds(5))
            } else {
                loop.append("did not become ready")
            }
        }
        Reliability.report("disk-faults", "tmpfs still full, 3 restarts: \(loop.joined(separator: "; "))")

        // 3. Space comes back: everything acknowledged is there and new writes work.
        unlink(filler)
        daemon = try #require(try await startDaemon("streamd-2"))
        let status = try await ctl(["status", "out", "--json"])
        #expect(status.status == 0)
        try await topUp(to: acknowledged + UInt64(256 << 10))
        Reliability.report("disk-faults", "tmpfs freed: restart ready, the rest of the refused send accepted; status: \(status.stdout.prefix(200))")

        // 4. The state directory turns read-only. Linux refuses to remount a file system read-only
        // while a file on it is open for writing (EBUSY; only the kernel's errors=remount-ro does
        // that to a running system, and the fault VFS's EIO stands for it): try it under the running
        // daemon, and if refused stop the daemon first, as after a crash.
        var remount = try await namespace.run("/bin/mount", ["-o", "remount,ro", state], label: "remount-ro")
        var underRunningDaemon = true
        if remount.status != 0 {
            underRunningDaemon = false
            let stopped = await daemon.terminate()
            Reliability.report("disk-faults", "read-only remount refused under the running daemon (\(remount.stderr.split(separator: "\n").first ?? "")); "
                + "daemon stopped first (\(stopped.map { "\($0)" } ?? "?"))")
            remount = try await namespace.run("/bin/mount", ["-o", "remount,ro", state], label: "remount-ro-2")
        }
        try #require(remount.status == 0, "\(remount)")
        let thirdOffset = acknowledged + UInt64(256 << 10)
        if underRunningDaemon {
            let third = workspace.file("third.bin")
            try writeBytes(StreamPattern.bytes(stream: 2, offset: thirdOffset, count: 64 << 10), to: third)
            let readOnly = try await ctl(["send", "out", third, "--quiet", "--reconnect-timeout", "0"])
            let roExit = await daemon.wait(timeout: .seconds(20))
            Reliability.report("disk-faults", "read-only state dir: streamctl send exit \(readOnly.status): \(readOnly.stderr.split(separator: "\n").last.map(String.init) ?? "")")
            Reliability.report("disk-faults", "read-only state dir: streamd \(roExit.map { "\($0)" } ?? "still running"); log: \(lastLogLine(daemon))")
            if roExit == nil { await daemon.terminate() }
        }
        for attempt in 0..<2 {
            let roStart = try namespace.streamd(arguments, label: "streamd-ro-\(attempt)")
            started.withLock { $0.append(roStart) }
            let roStartExit = await roStart.wait(timeout: .seconds(20))
            Reliability.report("disk-faults", "read-only state dir: start \(attempt + 1) \(roStartExit.map { "ends with \($0)" } ?? "keeps running"); "
                + "log: \(lastLogLine(roStart))")
            if roStartExit == nil { await roStart.terminate() }
        }

        // 5. Writable again: everything acknowledged arrives, intact and in order.
        #expect(try await namespace.run("/bin/mount", ["-o", "remount,rw", state], label: "remount-rw").status == 0)
        daemon = try #require(try await startDaemon("streamd-3"))
        let total = thirdOffset + UInt64(64 << 10)
        try await topUp(to: total)
        let client = try await StreamdClient.connect(socketPath: socket, clientName: "disk-faults")
        let got = try await Self.readBack(client, "in", stream: 2, count: total)
        await client.close()
        #expect(got == total)
        Reliability.report("disk-faults", "writable again: \(got) of \(total) bytes read back intact (acknowledged before the faults: \(acknowledged))")
        #expect(await daemon.terminate() == .exited(0))
    }
}
