import Foundation
import StreamEngine
import StreamEngineTesting
import Testing

/// The deterministic simulation: thousands of seeds of loss, latency, duplication and crashes.
@Suite struct SimulationTests {
    /// 1,000 seeds (in ten batches that run in parallel), each a pair of streams with random
    /// loss (0–50 %), exponential latency, duplicated and reordered completions, random windows
    /// and box sizes, and up to three crash-and-restores. About 70 % of the seeds read exactly
    /// once (peek and lagged consume), the rest with the at-least-once `appRead`.
    @Test(arguments: 0..<10)
    func thousandSeedsKeepEveryInvariant(batch: Int) async {
        let result = await offCooperativePool { Self.runBatch(batch) }
        #expect(result.failures.isEmpty, "\(result.failures.count) seeds failed; first: \(result.failures.prefix(3))")
        // Almost every seed really restored a side mid-transfer (a few finish before their crash).
        #expect(result.crashed >= 90, "only \(result.crashed) of 100 seeds crashed")
        // Both read paths are covered, and crashes really hit the exactly-once one: apps
        // resumed ahead of the restored stream's consumed offset.
        #expect((50...90).contains(result.exactlyOnce), "\(result.exactlyOnce) of 100 seeds read exactly once")
        #expect(result.restoresBehindApp > 0, "\(result)")
    }

    static func runBatch(_ batch: Int) -> (failures: [String], crashed: Int, exactlyOnce: Int, restoresBehindApp: Int, reofferedBytes: Int) {
        var failures: [String] = []
        var crashed = 0, exactlyOnce = 0, restoresBehindApp = 0, reofferedBytes = 0
        for seed in UInt64(batch * 100 + 1)...UInt64(batch * 100 + 100) {
            let parameters = StreamSimulation.Parameters.random(seed: seed)
            let report = StreamSimulation.run(parameters)
            if report.crashes > 0 { crashed += 1 }
            if parameters.exactlyOnceReads { exactlyOnce += 1 }
            restoresBehindApp += report.restoresBehindApp
            reofferedBytes += report.reofferedBytes
            if !report.passed {
                failures.append("seed \(seed) (loss \(parameters.loss), box \(parameters.boxSize), crashes \(parameters.crashes)): \(report)")
            }
        }
        return (failures, crashed, exactlyOnce, restoresBehindApp, reofferedBytes)
    }

    @Test func losslessTransferIsQuick() async {
        var parameters = StreamSimulation.Parameters(seed: 7)
        parameters.listenerBytes = 100_000
        parameters.dialerBytes = 50_000
        let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
        #expect(report.passed, "\(report)")
        #expect(report.simulatedTime < .seconds(120), "\(report)")
    }

    @Test func heavyLossWithCrashes() async {
        for seed in UInt64(1)...20 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.loss = 0.5
            parameters.crashes = 3
            parameters.duplication = 0.1
            let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
            #expect(report.passed, "seed \(seed): \(report)")
        }
    }
}

/// Runs CPU-bound work on a thread of its own, neither on Swift's cooperative pool nor on
/// Dispatch's (both as wide as the machine's cores), so that socket- and actor-based tests
/// running alongside are not starved of threads.
func offCooperativePool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: work()) }
        thread.start()
    }
}

/// `StreamConfiguration.demo(meanLatency:)`, used by `streamd demo`, over its whole latency range.
@Suite struct DemoTimingTests {
    @Test func demoTimingIsValidForEveryAcceptedLatency() throws {
        for ms in 0...10_000 {
            try StreamConfiguration.demo(meanLatency: .milliseconds(ms)).validate()
        }
        try StreamConfiguration.demo(meanLatency: .microseconds(1500)).validate()
    }
}
