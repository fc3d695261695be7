import IPC
import KpclientdSim
import StreamClient
import StreamDaemon
import StreamEngine

/// Benchmark 2: durable, acknowledged small app writes per second with group commit, against
/// raw `write` + `fdatasync` per second on the same file system. `--depth N` keeps N writes in
/// flight per connection (pipelined, each still answered once durable); depth 1 is one write
/// at a time, the figure of docs/BENCHMARKS.md section 2.
enum DurableWritesBenchmark {
    static func run(options: Options) async throws {
        let streams = max(options.streams ?? 100, 1)
        print("## durable writes: \(streams) streams, one connection each, \(options.writeSize) B writes, \(options.depth) in flight per connection, each answered once durable; \(format(options.duration.seconds, 1)) s per run")
        print("baseline: \(options.writeSize) B pwrite + fdatasync in a loop, same directory as the state (\(options.directory))")
        var app = Samples()
        var appendRate = Samples()
        var overwriteRate = Samples()
        var ratios = Samples()
        var p50 = Samples()
        var p99 = Samples()
        var cpuPerWrite = Samples()
        for run in 1...options.runs {
            let scratch = try ScratchDirectory(base: options.directory)
            defer { scratch.remove() }
            let leftover = try await idleCPU()
            let append = try fdatasyncRate(directory: scratch.path, size: options.writeSize, duration: options.duration, overwrite: false)
            let overwrite = try fdatasyncRate(directory: scratch.path, size: options.writeSize, duration: options.duration, overwrite: true)
            let result = try await appWrites(
                streams: streams, size: options.writeSize, depth: options.depth, duration: options.duration, warmUp: options.warmUp, directory: scratch.path)
            app.values.append(result.rate)
            appendRate.values.append(append)
            overwriteRate.values.append(overwrite)
            ratios.values.append(result.rate / append)
            p50.values.append(result.p50 * 1000)
            p99.values.append(result.p99 * 1000)
            cpuPerWrite.values.append(result.cpuPerWrite * 1e6)
            print("run \(run): streamd \(format(result.rate, 0)) writes/s (p50 \(format(result.p50 * 1000, 1)) ms, p99 \(format(result.p99 * 1000, 1)) ms), fdatasync append \(format(append, 0))/s, overwrite \(format(overwrite, 0))/s, ratio \(format(result.rate / append)); idle CPU before the run \(format(leftover)) s/s")
        }
        print("| streamd writes/s | fdatasync/s (append) | fdatasync/s (overwrite) | ratio vs append | write p50 ms | write p99 ms | process CPU µs per write |")
        print("| \(app.summary(0)) | \(appendRate.summary(0)) | \(overwriteRate.summary(0)) | \(ratios.summary()) | \(p50.summary(1)) | \(p99.summary(1)) | \(cpuPerWrite.summary(0)) |")
    }

    struct Result {
        var rate: Double
        var p50: Double
        var p99: Double
        /// Process CPU seconds per completed write.
        var cpuPerWrite: Double
    }

    /// Runs `streams` writers against a fresh daemon in `directory` for `duration`.
    static func appWrites(streams: Int, size: Int, depth: Int, duration: Duration, warmUp: Duration, directory: String) async throws -> Result {
        let daemon = try await BenchmarkDaemon.start(BenchmarkDaemon.configuration(in: directory))
        var clients: [StreamdClient] = []
        for index in 0..<streams {
            let client = try await daemon.client("writer\(index)")
            _ = try await client.create("w\(index)")
            clients.append(client)
        }
        for second in 1...4 {
            let idle = try await idleCPU(over: .seconds(1))
            print("daemon CPU with \(streams) created streams and no writes, second \(second): \(format(idle)) s/s")
        }
        let payload = pattern(size, seed: 1)
        var offsets = [UInt64](repeating: 0, count: streams)
        if warmUp > .zero {
            // Every stream fills its send window (nobody joins, so nobody acknowledges) and its
            // box traffic settles before the measured run.
            let clock = ContinuousClock()
            (offsets, _) = try await writeLoop(clients: clients, offsets: offsets, payload: payload, depth: depth, until: clock.now + warmUp)
            print("warm-up: \(format(warmUp.seconds, 0)) s of writes before the measured run, not counted")
        }
        let simBefore = await daemon.probe.embeddedKpclientdStatistics()
        let requestsBefore = simBefore?.framesReceived ?? 0
        let operationsBefore = await daemon.probe.operationCounts()
        let clock = ContinuousClock()
        let cpuBefore = processCPUSeconds()
        let start = clock.now
        let (_, latencies) = try await writeLoop(clients: clients, offsets: offsets, payload: payload, depth: depth, until: start + duration)
        let elapsed = (clock.now - start).seconds
        let cpu = processCPUSeconds() - cpuBefore
        print("process CPU while writing (daemon, embedded kpclientd and the \(streams) apps): \(format(cpu / elapsed)) s/s, \(format(cpu / Double(max(1, latencies.count)) * 1e6, 0)) µs per app write")
        let requests = (await daemon.probe.embeddedKpclientdStatistics()?.framesReceived ?? 0) - requestsBefore
        print("embedded kpclientd requests while writing: \(requests), \(format(Double(requests) / Double(max(1, latencies.count)))) per app write")
        if let simAfter = await daemon.probe.embeddedKpclientdStatistics() {
            let kinds = simAfter.requestsByKind.map { ($0.key, $0.value - (simBefore?.requestsByKind[$0.key] ?? 0)) }.filter { $0.1 > 0 }
            let perStreamSecond = { (count: Int) in format(Double(count) / Double(streams) / elapsed, 2) }
            print("  by kind (per stream and second): " + kinds.sorted { $0.1 > $1.1 }.map { "\($0.0) \($0.1) (\(perStreamSecond($0.1)))" }.joined(separator: ", "))
            let after = await daemon.probe.operationCounts()
            let sends = after.sends
            let before = operationsBefore.sends
            let commits = after.groupCommits - operationsBefore.groupCommits
            let records = after.recordsCommitted - operationsBefore.recordsCommitted
            print("  group commits: \(commits) (\(format(Double(commits) / elapsed, 0))/s), \(format(Double(records) / Double(max(1, commits)), 1)) records and \(format(Double(latencies.count) / Double(max(1, commits)), 1)) app writes per commit")
            print("  streams' operations started: writes \(after.writes - operationsBefore.writes), waiting reads \(after.waitingReads - operationsBefore.waitingReads), polls \(after.polls - operationsBefore.polls); writes by reason: first \(sends.firstSends - before.firstSends), timer \(sends.timeoutResends - before.timeoutResends), sack \(sends.sackResends - before.sackResends), waited-on \(sends.waitedOnResends - before.waitedOnResends), failure \(sends.failureResends - before.failureResends), deadline \(sends.deadlineResends - before.deadlineResends), confirmation \(sends.confirmationCopies - before.confirmationCopies); frames created: \(after.framesCreated.map { "\($0.key) \($0.value - (operationsBefore.framesCreated[$0.key] ?? 0))" }.sorted().joined(separator: ", "))")
        }
        for client in clients { await client.close() }
        try await daemon.stop()
        let sorted = latencies.sorted()
        guard !sorted.isEmpty else { throw BenchmarkError("no write completed") }
        return Result(
            rate: Double(sorted.count) / elapsed,
            p50: sorted[sorted.count / 2],
            p99: sorted[min(sorted.count - 1, sorted.count * 99 / 100)],
            cpuPerWrite: cpu / Double(sorted.count))
    }

    /// Every client writes `payload` at its next offset, keeping `depth` writes in flight each
    /// (issued in offset order on its connection, every reply meaning durable), until `deadline`;
    /// returns the offsets reached and every write's latency in seconds, from issue to reply.
    static func writeLoop(
        clients: [StreamdClient], offsets: [UInt64], payload: [UInt8], depth: Int, until deadline: ContinuousClock.Instant
    ) async throws -> (offsets: [UInt64], latencies: [Double]) {
        let clock = ContinuousClock()
        let size = UInt64(payload.count)
        return try await withThrowingTaskGroup(of: (Int, UInt64, [Double]).self) { group in
            for (index, client) in clients.enumerated() {
                let start = offsets[index]
                group.addTask {
                    let name = try StreamName("w\(index)")
                    var next = start
                    var inFlight: [(reply: StreamdClient.PendingReply, issued: ContinuousClock.Instant, end: UInt64)] = []
                    var latencies: [Double] = []
                    while true {
                        while inFlight.count < depth, clock.now < deadline {
                            let reply = try await client.issue(.write(name: name, offset: next, data: payload))
                            next += size
                            inFlight.append((reply, clock.now, next))
                        }
                        guard !inFlight.isEmpty else { break }
                        let write = inFlight.removeFirst()
                        guard case .written(let accepted, let end) = try await client.reply(to: write.reply), accepted == size, end == write.end else {
                            throw BenchmarkError("a write was not accepted whole at its offset")
                        }
                        latencies.append((clock.now - write.issued).seconds)
                    }
                    return (index, next, latencies)
                }
            }
            var reached = offsets
            var all: [Double] = []
            for try await (index, offset, part) in group {
                reached[index] = offset
                all += part
            }
            return (reached, all)
        }
    }
}
