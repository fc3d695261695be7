import Foundation
import IPC
import StreamClient
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// App-protocol load and abuse (issue 10): many well-behaved clients doing open / write / read /
/// close on one `streamd` process while idle clients, clients holding half a frame and clients that
/// never read their replies sit on the same socket. The good clients must see no error; the
/// daemon's memory must not grow without bound.
///
/// `STREAMD_RELIABILITY=full`: 500 clients for 60 s (CI: 150 clients for 6 s).
@Suite(.serialized, .timeLimit(.minutes(10)))
struct AppLoadTests {
    /// Resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`).
    static func residentKiB(_ pid: pid_t) -> Int {
        let text = readText("/proc/\(pid)/status")
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// One client's loop: create, write, read, status, close, remove, until `deadline`.
    static func cycle(_ client: StreamdClient, index: Int, deadline: ContinuousClock.Instant) async -> (latencies: [Double], errors: [String]) {
        var latencies: [Double] = []
        var errors: [String] = []
        var round = 0
        let clock = ContinuousClock()
        func timed<T>(_ body: () async throws -> T) async throws -> T {
            let began = clock.now
            let value = try await body()
            latencies.append(milliseconds(clock.now - began))
            return value
        }
        while clock.now < deadline, errors.count < 5 {
            let name = "load\(index)-\(round)"
            round += 1
            do {
                _ = try await timed { try await client.create(name) }
                let data = StreamPattern.bytes(stream: index, offset: UInt64(round) << 12, count: 1_024)
                let written = try await timed { try await client.write(name, offset: 0, data: data) }
                if written.accepted != UInt64(data.count) { errors.append("\(name): write accepted \(written.accepted)") }
                let read = try await timed { try await client.read(name, offset: 0, wait: false) }
                if !read.bytes.isEmpty { errors.append("\(name): read \(read.bytes.count) bytes nobody sent") }
                let status = try await timed { try await client.status(name) }
                if status.bytesWritten != UInt64(data.count) { errors.append("\(name): status says \(status.bytesWritten) bytes written") }
                try await timed { try await client.closeStream(name, wait: false) }
                try await timed { try await client.remove(name) }
            } catch {
                errors.append("\(name): \(error)")
            }
        }
        return (latencies, errors)
    }

    @Test(.enabled(if: Products.available, "needs swift build (streamd)"))
    func manyClientsBesideAbusiveOnesSeeNoErrors() async throws {
        let clients = Reliability.size(quick: 150, full: 500)
        let duration = Reliability.size(quick: Duration.seconds(6), full: .seconds(60))
        let abusive = Reliability.size(quick: 30, full: 100)
        let workspace = ProcessWorkspace()
        let config = workspace.path + "/load.toml"
        try writeBytes(Array("""
            max_connections = \(clients + 3 * abusive + 50)
            client_timeout = "5s"
            [embedded]
            latency = "2ms"
            """.utf8), to: config)
        let daemon = try await StreamdProcess.start(in: workspace, name: "load", extraArguments: ["--config", config])

        // Warm up (one full cycle), then measure memory before the load.
        let warm = try await StreamdClient.connect(socketPath: daemon.socketPath, clientName: "warm")
        let warmed = await Self.cycle(warm, index: 99_999, deadline: ContinuousClock.now + .milliseconds(500))
        #expect(warmed.errors.isEmpty, "\(warmed.errors)")
        await warm.close()
        let rssBefore = Self.residentKiB(daemon.child.pid)

        // Abusers: idle (connect, say nothing), half a frame, and requests whose replies are never read.
        var idle: [RawSocketClient] = []
        var half: [RawSocketClient] = []
        var deaf: [RawSocketClient] = []
        for _ in 0..<abusive {
            idle.append(try RawSocketClient(path: daemon.socketPath))
            let partial = try RawSocketClient(path: daemon.socketPath)
            await partial.send(Array(IPCRequestMessage(id: 1, request: .hello(minVersion: 1, maxVersion: 1, client: "half")).framed().prefix(7)))
            half.append(partial)
            let never = try RawSocketClient(path: daemon.socketPath)
            try await never.hello()
            deaf.append(never)
        }
        let flood = Task {
            // Each deaf client sends status requests (with big replies queued) and never reads them.
            for _ in 0..<40 {
                for client in deaf { for _ in 0..<10 { await client.send(.daemonStatus) } }
                try? await Task.sleep(for: .milliseconds(50))
            }
        }

        let clock = ContinuousClock()
        let began = clock.now
        let deadline = began + duration
        var connected: [StreamdClient] = []
        for index in 0..<clients {
            connected.append(try await StreamdClient.connect(socketPath: daemon.socketPath, clientName: "load\(index)"))
        }
        let results = await withTaskGroup(of: (latencies: [Double], errors: [String]).self) { group in
            for (index, client) in connected.enumerated() {
                group.addTask { await Self.cycle(client, index: index, deadline: deadline) }
            }
            var all: [(latencies: [Double], errors: [String])] = []
            for await result in group { all.append(result) }
            return all
        }
        let elapsed = clock.now - began
        flood.cancel()
        _ = await flood.value
        for client in connected { await client.close() }
        // The idle and half-frame clients are dropped by the client timeout (5 s here).
        try await Task.sleep(for: .seconds(6))
        var closedIdle = 0
        for client in idle + half where try await client.isClosed(within: .milliseconds(50)) { closedIdle += 1 }
        let rssAfter = Self.residentKiB(daemon.child.pid)
        let probe = try await daemon.ctl(["status"])
        let termination = await daemon.stop()

        let latencies = Summary(results.flatMap(\.latencies))
        let errors = results.flatMap(\.errors)
        let requests = latencies.count
        Reliability.report("app-load", "clients=\(clients) for \(Int(seconds(elapsed))) s beside \(abusive) idle, \(abusive) half-frame, \(abusive) never-reading")
        Reliability.report("app-load", String(
            format: "requests=%d (%.0f/s) errors=%d latency ms p50=%.1f p99=%.1f max=%.1f", requests, Double(requests) / seconds(elapsed), errors.count,
            latencies.percentile(0.5), latencies.percentile(0.99), latencies.max))
        Reliability.report("app-load", "daemon RSS KiB before=\(rssBefore) after=\(rssAfter) growth=\(rssAfter - rssBefore)")
        Reliability.report("app-load", "idle/half-frame clients closed by the client timeout: \(closedIdle) of \(2 * abusive)")
        for error in errors.prefix(20) { print("[app-load] \(error)") }
        #expect(errors.isEmpty)
        #expect(probe.status == 0, "the daemon did not answer after the load: \(probe)")
        #expect(closedIdle == 2 * abusive)
        #expect(termination == .exited(0))
        // Bounded memory: the daemon's growth stays under 256 MiB whatever the run length.
        #expect(rssAfter - rssBefore < 256 * 1024)
    }
}
