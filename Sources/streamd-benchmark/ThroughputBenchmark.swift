import IPC
import KpclientdSim
import StreamClient
import StreamDaemon
import StreamEngine

/// Benchmark 1: bytes app → streamd → app over one stream pair, against a raw socketpair copy.
enum ThroughputBenchmark {
    static func run(options: Options) async throws {
        let count = options.mebibytes << 20
        print("## throughput: \(options.mebibytes) MiB app → streamd → app (one stream pair, embedded kpclientd, latency 0)")
        print("baseline: AF_UNIX SOCK_STREAM socketpair between two threads of this process, \(IPCLimits.maxChunk / 1024) KiB writes, reader touches every byte")
        print("ceiling: the same bytes appended to a file in \(IPCLimits.maxChunk / 1024) KiB writes, each followed by fdatasync, in the state's directory (\(options.directory)): no design that makes a byte durable before acknowledging it can beat this")
        var app = Samples()
        var raw = Samples()
        var ratios = Samples()
        var ceilings = Samples()
        var cpuPerBox = Samples()
        for run in 1...options.runs {
            let leftover = try await idleCPU()
            let rawTime = try socketPairCopy(count: count, chunk: IPCLimits.maxChunk)
            let durableTime: Duration
            do {
                let scratch = try ScratchDirectory(base: options.directory)
                defer { scratch.remove() }
                durableTime = try durableAppendTime(directory: scratch.path, count: count, chunk: IPCLimits.maxChunk)
            }
            let transfer = try await appTransfer(count: count, base: options.directory)
            let appTime = transfer.elapsed
            cpuPerBox.values.append(transfer.cpuPerBox * 1e6)
            let rawRate = Double(count) / 1_048_576 / rawTime.seconds
            let appRate = Double(count) / 1_048_576 / appTime.seconds
            raw.values.append(rawRate)
            app.values.append(appRate)
            ratios.values.append(appRate / rawRate)
            let ceiling = rawTime.seconds / durableTime.seconds
            ceilings.values.append(ceiling)
            print("run \(run): streamd \(format(appRate)) MiB/s (\(format(appTime.seconds, 3)) s), socketpair \(format(rawRate)) MiB/s, ratio \(format(appRate / rawRate, 5)); durable append \(format(Double(count) / 1_048_576 / durableTime.seconds)) MiB/s, ceiling on the ratio \(format(ceiling)); idle CPU before the run \(format(leftover)) s/s")
        }
        print("| streamd MiB/s | socketpair MiB/s | ratio | ceiling: durable append / socketpair | process CPU µs per box |")
        print("| \(app.summary()) | \(raw.summary(0)) | \(ratios.summary(5)) | \(ceilings.summary()) | \(cpuPerBox.summary(0)) |")
    }

    /// What one transfer through a fresh daemon took.
    struct Transfer {
        /// From the first send to the last byte read.
        var elapsed: Duration
        /// Process CPU seconds (daemon, embedded kpclientd and both apps) per first send of a box.
        var cpuPerBox: Double
    }

    /// One transfer through a fresh daemon; returns its time and process CPU per box.
    static func appTransfer(count: Int, base: String) async throws -> Transfer {
        let scratch = try ScratchDirectory(base: base)
        defer { scratch.remove() }
        let daemon = try await BenchmarkDaemon.start(BenchmarkDaemon.configuration(in: scratch.path))
        let sender = try await daemon.client("sender")
        let receiver = try await daemon.client("receiver")
        let (_, address) = try await sender.create("tx")
        _ = try await receiver.join("rx", address: address)
        let data = pattern(count, seed: 9)
        let clock = ContinuousClock()
        let start = clock.now
        let cpuBefore = processCPUSeconds()
        async let received = receive(receiver, "rx", expected: data)
        _ = try await sender.send("tx", bytes: data, at: 0)
        let got = try await received
        let elapsed = clock.now - start
        let cpu = processCPUSeconds() - cpuBefore
        guard got == count else { throw BenchmarkError("received \(got) of \(count) bytes") }
        let counts = await daemon.probe.operationCounts()
        let resends = counts.sends.timeoutResends + counts.sends.sackResends + counts.sends.waitedOnResends
            + counts.sends.failureResends + counts.sends.deadlineResends
        var line = "  daemon: \(counts.groupCommits) group commits of \(counts.recordsCommitted) records; box writes: \(counts.sends.firstSends) first, "
            + "\(resends) resent, \(counts.sends.confirmationCopies) copies; waiting reads \(counts.waitingReads)"
        if let statistics = await daemon.probe.embeddedKpclientdStatistics() {
            line += "; kpclientd requests: " + statistics.requestsByKind.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        let cpuPerBox = cpu / Double(max(1, counts.sends.firstSends))
        line += "; process CPU \(format(cpu, 2)) s (\(format(cpu / elapsed.seconds)) s/s), \(format(cpuPerBox * 1e6, 0)) µs per box"
        print(line)
        await sender.close()
        await receiver.close()
        try await daemon.stop()
        return Transfer(elapsed: elapsed, cpuPerBox: cpuPerBox)
    }

    /// Reads and consumes until `expected.count` bytes arrived, comparing them.
    static func receive(_ client: StreamdClient, _ name: String, expected: [UInt8]) async throws -> Int {
        var offset: UInt64 = 0
        while offset < UInt64(expected.count) {
            let (_, bytes, _) = try await client.read(name, offset: offset, wait: true)
            let start = Int(offset)
            guard bytes.elementsEqual(expected[start..<(start + bytes.count)]) else {
                throw BenchmarkError("received bytes differ at offset \(offset)")
            }
            offset += UInt64(bytes.count)
            try await client.consume(name, through: offset)
        }
        return Int(offset)
    }
}
