import Foundation
import StreamEngine
import StreamEngineTesting

/// The protocol's efficiency on the deterministic simulation, in simulated time.
///
/// Every figure counts mixnet operations (each costs one paced send tick on Katzenpost) or
/// simulated seconds, so it is exact and repeatable, independent of this machine.
enum ProtocolBenchmark {
    /// The box size of the Katzenpost testnet geometry, and the data a frame of it carries.
    static let boxSize = 1549
    static let dataPerBox = boxSize - 16 - 29
    static let latency = Duration.seconds(1)

    /// One configuration measured over a few seeds of a bulk one-way transfer.
    struct BulkResult {
        var loss: Double
        var seconds: Double
        var writerWritesPerBox: Double
        var receiverReadsPerBox: Double
        var emptyReadsPerBox: Double
        var ackOnlyPerBox: Double
        var failures: Int
        var writerStatistics: StreamSendStatistics
        var receiverStatistics: StreamSendStatistics
        /// Each end's operations in flight until the transfer finished, by what they waited on.
        var writerOperations: StreamSimulation.OperationSeconds
        var receiverOperations: StreamSimulation.OperationSeconds

        /// Goodput in data bytes per simulated second.
        func goodput(bytes: Int) -> Double { Double(bytes) / seconds }
    }

    /// The window and read-ahead in budgets: 6, or `STREAM_BENCHMARK_WINDOW` (1...16) for
    /// measuring other windows.
    static let windowMultiple = ProcessInfo.processInfo.environment["STREAM_BENCHMARK_WINDOW"]
        .flatMap { Int($0) }.map { min(max($0, 1), 16) } ?? 6

    /// Our settings: a window of six budgets (the ack loop takes about four latencies at full
    /// rate, and loss recovery holds frames longer; the machine halves it on a lossy path), a
    /// read-ahead as large (so that a lost frame does not stop the reader short of the window),
    /// and the embedder's budget `C` per end.
    static func ours(budget: Int) -> StreamConfiguration {
        var configuration = StreamConfiguration()
        configuration.sendWindow = windowMultiple * budget
        configuration.readAhead = windowMultiple * budget
        configuration.maxOperationsInFlight = budget
        return configuration
    }

    /// The Go original's settings: window 7 and (as near as this protocol allows, since a
    /// reader must look past a lost ack-only box) one read at a time.
    static var goOriginal: StreamConfiguration {
        var configuration = StreamConfiguration()
        configuration.sendWindow = 7
        configuration.readAhead = 2
        return configuration
    }

    /// Runs `seeds` seeds of a one-way transfer of `bytes` at loss `loss`.
    static func bulk(_ configuration: StreamConfiguration, loss: Double, bytes: Int, seeds: ClosedRange<UInt64>) -> BulkResult {
        var seconds = 0.0, writes = 0, reads = 0, empty = 0, ackOnly = 0, boxes = 0, passed = 0
        var statistics = StreamSendStatistics(), receiverStatistics = StreamSendStatistics()
        var writerOperations = StreamSimulation.OperationSeconds(), receiverOperations = StreamSimulation.OperationSeconds()
        for seed in seeds {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.boxSize = boxSize
            parameters.loss = loss
            parameters.meanLatency = latency
            parameters.listenerBytes = bytes
            parameters.dialerBytes = 0
            parameters.configuration = configuration
            parameters.maxWriteChunk = 64 * 1024
            let report = StreamSimulation.run(parameters)
            guard report.passed, let delivered = report.deliveredAt[1] else {
                print("  seed \(seed) at loss \(loss) failed: \(report)")
                continue
            }
            passed += 1
            seconds += Double(delivered.nanosecondsClamped) / 1e9
            writes += report.writesBySide[0]
            reads += report.readsBySide[1]
            empty += report.emptyReadsBySide[1]
            ackOnly += report.ackOnlyWritesBySide[1]
            boxes += report.dataBoxesBySide[0]
            statistics.add(report.sendStatisticsBySide[0])
            receiverStatistics.add(report.sendStatisticsBySide[1])
            writerOperations.add(report.operationSeconds[0])
            receiverOperations.add(report.operationSeconds[1])
        }
        let perBox = { (count: Int) in Double(count) / Double(max(boxes, 1)) }
        return BulkResult(
            loss: loss, seconds: seconds / Double(max(passed, 1)), writerWritesPerBox: perBox(writes),
            receiverReadsPerBox: perBox(reads), emptyReadsPerBox: perBox(empty), ackOnlyPerBox: perBox(ackOnly),
            failures: seeds.count - passed, writerStatistics: statistics,
            receiverStatistics: receiverStatistics, writerOperations: writerOperations, receiverOperations: receiverOperations)
    }

    static func run(csvDirectory: String?) {
        let bytes = 1 << 20
        let budget = 16
        let losses = [0.0, 0.1, 0.3]
        var csv = "loss,ours_kib_s,go_kib_s,bound_kib_s\n"
        // For tuning: only our settings at the three losses of the table, and the low-rate latency.
        let quick = ProcessInfo.processInfo.environment["STREAM_BENCHMARK_QUICK"] != nil
        // STREAM_BENCHMARK_SEEDS=N measures on seeds 1...N (40 unless set). The transfer is
        // chaotic: one changed resend moves every later event, and means over 5 seeds moved by
        // up to 0.04 writes per box at 30 % loss with changes that moved 100-seed means by 0.01.
        let seedCount = ProcessInfo.processInfo.environment["STREAM_BENCHMARK_SEEDS"].flatMap { UInt64($0) }.map { min(max($0, 1), 1000) } ?? 40
        print("Bulk one-way transfer of 1 MiB, simulated time: box \(boxSize) B (S = \(dataPerBox) data bytes), mean latency L = 1 s, \(seedCount) seeds.")
        print("Ours: window \(windowMultiple * budget), read-ahead \(windowMultiple * budget), in-flight budget C = \(budget) per end. Bound: S·C(1−p)/L.")
        print("loss  writer writes/box (≤1.15/(1−p))  receiver reads/box (≤1.15/(1−p))  of which empty  ack-only/box (≤0.1)  goodput KiB/s  bound KiB/s  ratio (≥0.8)")
        for loss in losses + (quick ? [] : [0.01, 0.2, 0.4]) {
            let result = bulk(ours(budget: budget), loss: loss, bytes: bytes, seeds: 1...seedCount)
            let go = quick ? result : bulk(goOriginal, loss: loss, bytes: bytes, seeds: 1...seedCount)
            let bound = Double(dataPerBox) * Double(budget) * (1 - loss) / 1.0
            csv += String(format: "%.2f,%.2f,%.2f,%.2f\n", loss, result.goodput(bytes: bytes) / 1024, go.goodput(bytes: bytes) / 1024, bound / 1024)
            guard losses.contains(loss) else { continue }
            let limit = 1.15 / (1 - loss)
            print(pad(String(format: "%.1f", loss), 6)
                + pad(String(format: "%.3f (limit %.2f)", result.writerWritesPerBox, limit), 34)
                + pad(String(format: "%.3f (limit %.2f)", result.receiverReadsPerBox, limit), 35)
                + pad(String(format: "%.3f", result.emptyReadsPerBox), 16)
                + pad(String(format: "%.3f", result.ackOnlyPerBox), 21)
                + pad(String(format: "%.1f", result.goodput(bytes: bytes) / 1024), 15)
                + pad(String(format: "%.1f", bound / 1024), 13)
                + String(format: "%.2f", result.goodput(bytes: bytes) / bound)
                + (result.failures > 0 ? "  (\(result.failures) seeds failed)" : ""))
            print("      writer's writes: \(result.writerStatistics)")
            print("      receiver's writes: \(result.receiverStatistics)")
            print("      operations in flight (mean, of \(budget)): writer \(inFlight(result.writerOperations)); receiver \(inFlight(result.receiverOperations))")
        }
        if quick {
            lowRateLatency(csvDirectory: nil)
            return
        }
        print("\nGo original's settings (window 7, read-ahead 2) through the same harness:")
        print("loss  goodput KiB/s  ours KiB/s  ours / Go (≥5)")
        for line in csv.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: ",").compactMap { Double($0) }
            print(pad(String(format: "%.2f", fields[0]), 6) + pad(String(format: "%.1f", fields[2]), 15)
                + pad(String(format: "%.1f", fields[1]), 12) + String(format: "%.1f", fields[1] / max(fields[2], 0.001)))
        }
        if let csvDirectory {
            write(csv, to: "\(csvDirectory)/goodput-vs-loss.csv")
        }

        lowRateLatency(csvDirectory: csvDirectory)
        idleCost()
    }

    /// One 100-byte write every 5 s at loss 0.1: app-to-app latency in units of L.
    static func lowRateLatency(csvDirectory: String?) {
        var latencies: [Double] = []
        var reads = 0, writes = 0, seconds = 0.0
        for seed in UInt64(1)...10 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.boxSize = boxSize
            parameters.loss = 0.1
            parameters.meanLatency = latency
            parameters.listenerBytes = 100 * 60
            parameters.dialerBytes = 0
            parameters.paceInterval = .seconds(5)
            parameters.paceChunk = 100
            parameters.configuration = ours(budget: 16)
            let report = StreamSimulation.run(parameters)
            guard report.passed else {
                print("  low-rate seed \(seed) failed: \(report)")
                continue
            }
            latencies += report.deliveryLatencies.map { Double($0.nanosecondsClamped) / Double(latency.nanosecondsClamped) }
            reads += report.readsBySide[1]
            writes += report.writesBySide[0]
            seconds += Double(report.simulatedTime.nanosecondsClamped) / 1e9
        }
        latencies.sort()
        func quantile(_ q: Double) -> Double { latencies.isEmpty ? .nan : latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] }
        print("\nLow rate: one 100-B write every 5 s, loss 0.1, L = 1 s, 10 seeds × 60 writes:")
        print(String(format: "app-to-app latency p50 %.2f L, p90 %.2f L, p99 %.2f L (target p99 ≤ 3 L); receiver reads %.2f/s, writer writes %.2f/s",
                     quantile(0.5), quantile(0.9), quantile(0.99), Double(reads) / seconds, Double(writes) / seconds))
        if let csvDirectory {
            write("latency_l\n" + latencies.map { String(format: "%.4f", $0) }.joined(separator: "\n") + "\n", to: "\(csvDirectory)/low-rate-latency.csv")
        }
    }

    /// The reads an idle stream makes per hour, against the time it takes to notice new data.
    static func idleCost() {
        print("\nIdle stream: reads per idle hour (one end, measured on a StreamMachine after it went idle, every poll")
        print("answered \"not yet written\") and the worst time to notice new data (the schedule's bound):")
        print("max idle poll interval  reads/hour  worst time to notice")
        for maxPoll in [60, 300, 900] {
            var configuration = StreamConfiguration()
            configuration.maxIdlePollInterval = .seconds(Int64(maxPoll))
            print(pad("\(maxPoll) s", 24) + pad("\(idleReadsPerHour(configuration))", 12) + "\(Int(Double(maxPoll) * 1.25)) s + 1 L")
        }
    }

    /// Drives one stream end with no peer for `idleAfter` plus an hour of simulated time and
    /// counts the reads it issues during that hour; each poll is answered at once with "not yet
    /// written", and waiting reads never complete (the end is cancelling them as it goes idle).
    static func idleReadsPerHour(_ configuration: StreamConfiguration) -> Int {
        guard var machine = try? StreamMachine(
            address: StreamAddress.generate(mode: .endToEnd), role: .listener, boxSize: boxSize,
            configuration: configuration, now: .zero, randomSeed: 1)
        else { return -1 }
        let idleFrom = StreamTime.zero + configuration.idleAfter
        let end = idleFrom + .seconds(3600)
        var now = StreamTime.zero
        var reads = 0
        while now < end {
            for action in machine.takeActions() {
                guard case .read(let operation, _, _, let mode) = action else { continue }
                if now >= idleFrom { reads += 1 }
                if mode == .poll { machine.readCompleted(operation, result: .success(nil), now: now) }
            }
            guard let deadline = machine.nextDeadline else { break }
            now = max(now, deadline)
            machine.handleTimers(now: now)
        }
        return reads
    }

    static func write(_ text: String, to path: String) {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            FileHandle.standardError.write(Data("stream-benchmark: cannot write \(path): \(error.localizedDescription)\n".utf8))
        }
    }

    /// An end's mean operations in flight: writes, then reads by what they waited on.
    static func inFlight(_ operations: StreamSimulation.OperationSeconds) -> String {
        String(
            format: "%.1f writes, reads of boxes stored %.1f, landing %.1f, lost %.1f, not yet written %.1f",
            operations.mean(.write), operations.mean(.readOfStoredBox), operations.mean(.readOfLandingBox),
            operations.mean(.readOfLostBox), operations.mean(.readOfUnwrittenBox))
    }

    static func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
}
