#if canImport(Glibc)
import Glibc
#endif
import KpclientdSim
import StreamClient
import StreamDaemon
import StreamStore

/// Benchmark 3: start → ready with many stored streams, and resident memory per idle stream.
enum StartupBenchmark {
    static func run(options: Options) async throws {
        let count = options.streams ?? 1000
        print("## startup and idle memory: \(count) stored streams (listeners, never joined), embedded kpclientd in process")
        let scratch = try ScratchDirectory(base: options.directory)
        defer { scratch.remove() }
        let configuration = BenchmarkDaemon.configuration(in: scratch.path)
        let clock = ContinuousClock()

        // Create the streams; RSS before and after (the embedded kpclientd's share included).
        let daemon = try await BenchmarkDaemon.start(configuration)
        let connections = 8
        var clients: [StreamdClient] = []
        for index in 0..<connections { clients.append(try await daemon.client("creator\(index)")) }
        try await Task.sleep(for: .milliseconds(500))
        let before = residentBytes()
        let breakdownBefore = MemoryBreakdown.now()
        let createStart = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (lane, client) in clients.enumerated() {
                group.addTask {
                    for index in stride(from: lane, to: count, by: connections) {
                        _ = try await client.create(name(index))
                    }
                }
            }
            try await group.waitForAll()
        }
        let createTime = clock.now - createStart
        try await Task.sleep(for: .seconds(1))
        if let trace = options.memoryTrace {
            // Diagnostic: how resident memory moves after the measured settling second.
            var line = "RSS after creating, KiB, at 1 s steps:"
            for _ in 0..<trace {
                line += " \(residentBytes() / 1024)"
                try await Task.sleep(for: .seconds(1))
            }
            print(line)
        }
        let after = residentBytes()
        let breakdownAfter = MemoryBreakdown.now()
        let perStream = Double(after - before) / Double(max(count, 1))
        print("created \(count) streams in \(format(createTime.seconds, 1)) s (\(connections) connections, one SQLite commit each); RSS \(before / 1024) KiB → \(after / 1024) KiB: \(format(perStream / 1024)) KiB per idle stream")
        MemoryBreakdown.printDifference(from: breakdownBefore, to: breakdownAfter, streams: count)
        if let simulator = await daemon.probe.embeddedKpclientdStatistics() {
            let operations = await daemon.probe.operationCounts()
            print("  embedded kpclientd: \(simulator.inFlightOperations) operations in flight, \(simulator.blockedReads) reads waiting for their box, \(simulator.storedBoxes) boxes stored; streams started \(operations.writes) writes, \(operations.waitingReads) waiting reads, \(operations.polls) polls")
            print("  embedded kpclientd's requests: " + simulator.requestsByKind.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        if let value = getenv("STREAMD_BENCHMARK_EXIT_AFTER_MEMORY") {
            // Diagnostic: exit here (after waiting as many seconds as the variable says, if it
            // is a number), so a heap profiler (heaptrack) reports what was live then as "leaked".
            let seconds = min(Int(String(cString: value)) ?? 0, 600)
            if seconds > 0 { try await Task.sleep(for: .seconds(seconds)) }
            exit(0)
        }
        for client in clients { await client.close() }
        try await daemon.stop()

        // Restart repeatedly: start → ready, the SQLite load alone, and RSS after restore.
        var ready = Samples()
        var load = Samples()
        var restoredPerStream = Samples()
        var cpuSeconds = Samples()
        for run in 1...options.runs {
            let database = try await StreamDatabase.open(directory: configuration.stateDirectory)
            let loadStart = clock.now
            let rows = try await database.loadAll()
            let loadTime = clock.now - loadStart
            await database.close()
            guard rows.count == count else { throw BenchmarkError("the store holds \(rows.count) streams, not \(count)") }
            let idle = residentBytes()
            let cpuBefore = processCPUSeconds()
            let restarted = try await BenchmarkDaemon.start(configuration)
            let cpu = processCPUSeconds() - cpuBefore
            try await Task.sleep(for: .seconds(1))
            let restored = residentBytes()
            try await restarted.stop()
            ready.values.append(restarted.startToReady.seconds)
            load.values.append(loadTime.seconds)
            cpuSeconds.values.append(cpu)
            restoredPerStream.values.append(Double(restored - idle) / Double(max(count, 1)) / 1024)
            print("run \(run): start → ready \(format(restarted.startToReady.seconds, 3)) s, process CPU \(format(cpu, 3)) s (SQLite loadAll alone \(format(loadTime.seconds, 3)) s); RSS after restore +\(format(Double(restored - idle) / Double(max(count, 1)) / 1024)) KiB per stream")
        }
        print("| streams | start → ready s | CPU s during start | SQLite loadAll s | KiB per idle stream (created) | KiB per stream (after restore) |")
        print("| \(count) | \(ready.summary(3)) | \(cpuSeconds.summary(3)) | \(load.summary(3)) | \(format(perStream / 1024)) | \(restoredPerStream.summary()) |")
    }

    static func name(_ index: Int) -> String {
        var digits = "\(index)"
        while digits.count < 6 { digits = "0" + digits }
        return "s" + digits
    }
}
