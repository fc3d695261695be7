import StreamEngine
import StreamEngineTesting
import Testing

/// The deterministic simulation: thousands of seeds of loss, latency, duplication and crashes.
@Suite struct SimulationTests {
    /// 1,000 seeds, each a pair of streams with random loss (0–50 %), exponential latency,
    /// duplicated and reordered completions, and up to three crash-and-restores.
    @Test func thousandSeedsKeepEveryInvariant() {
        var failures: [String] = []
        for seed in UInt64(1)...1000 {
            let parameters = StreamSimulation.Parameters.random(seed: seed)
            let report = StreamSimulation.run(parameters)
            if !report.passed {
                failures.append("seed \(seed) (loss \(parameters.loss), box \(parameters.boxSize), crashes \(parameters.crashes)): \(report)")
            }
        }
        #expect(failures.isEmpty, "\(failures.count) seeds failed; first: \(failures.prefix(3))")
    }

    @Test func losslessTransferIsQuick() {
        var parameters = StreamSimulation.Parameters(seed: 7)
        parameters.listenerBytes = 100_000
        parameters.dialerBytes = 50_000
        let report = StreamSimulation.run(parameters)
        #expect(report.passed, "\(report)")
        #expect(report.simulatedTime < .seconds(120), "\(report)")
    }

    @Test func heavyLossWithCrashes() {
        for seed in UInt64(1)...20 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.loss = 0.5
            parameters.crashes = 3
            parameters.duplication = 0.1
            let report = StreamSimulation.run(parameters)
            #expect(report.passed, "seed \(seed): \(report)")
        }
    }
}

@Suite struct SimulationProbe {
    @Test func probeSeeds() {
        let clock = ContinuousClock()
        for seed in [UInt64(55)] {
            let parameters = StreamSimulation.Parameters.random(seed: seed)
            let start = clock.now
            let report = StreamSimulation.run(parameters)
            print("seed \(seed) \(clock.now - start) loss=\(parameters.loss) box=\(parameters.boxSize) win=\(parameters.configuration.sendWindow)/\(parameters.configuration.readAhead) crashes=\(parameters.crashes) \(report.eventKinds) \(report)".prefix(300))
        }
    }
}
