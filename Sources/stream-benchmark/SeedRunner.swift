import StreamEngine
import StreamEngineTesting

/// `stream-benchmark seeds N [--only SEED | --from SEED]`: runs the random simulation seeds
/// 1...N (or SEED...N) in this (release) build, as `SimulationTests` does in debug, and prints the failures with their full
/// diagnostics and the worst retransmission ratio, to hunt for failing seeds quickly.
enum SeedRunner {
    static func run(seeds: ClosedRange<UInt64>, printingDiagnostics: Bool) {
        var failed = 0, writes = 0, distinct = 0, hung = 0
        var worst = 0.0, worstSeed: UInt64 = 0
        var seconds = 0.0, slowest = 0.0, slowestSeed: UInt64 = 0
        for seed in seeds {
            let parameters = StreamSimulation.Parameters.random(seed: seed)
            let report = StreamSimulation.run(parameters)
            writes += report.boxWrites
            distinct += report.distinctBoxes
            hung += report.hungOperations
            let time = Double(report.simulatedTime.nanosecondsClamped) / 1e9
            seconds += time
            if time > slowest { (slowest, slowestSeed) = (time, seed) }
            let dataBoxes = report.dataBoxesBySide.reduce(0, +) + 2
            let ratio = Double(max(0, report.boxWrites - 300)) / Double(dataBoxes) * (1 - parameters.loss) * (1 - parameters.loss)
            if ratio > worst { (worst, worstSeed) = (ratio, seed) }
            if printingDiagnostics {
                print("seed \(seed): loss \(parameters.loss), hang \(parameters.hang), latency \(parameters.meanLatency), window \(parameters.configuration.sendWindow), "
                      + "read-ahead \(parameters.configuration.readAhead), bytes \(parameters.listenerBytes)/\(parameters.dialerBytes); \(report)")
                print("  listener's writes: \(report.sendStatisticsBySide[0])\n  dialer's writes: \(report.sendStatisticsBySide[1])")
            }
            guard !report.passed else { continue }
            failed += 1
            let description = String(describing: report)
            print("FAIL seed \(seed) (loss \(parameters.loss), hang \(parameters.hang), window \(parameters.configuration.sendWindow), read-ahead \(parameters.configuration.readAhead)): \(printingDiagnostics ? description : String(description.prefix(600)))")
        }
        print("seeds \(seeds.count == 1 ? "\(seeds.lowerBound)" : "\(seeds.lowerBound)...\(seeds.upperBound)"): \(failed) failed; box writes per distinct box \(Double(writes) / Double(max(1, distinct))); "
              + "hung operations \(hung); simulated time mean \(Int(seconds / Double(seeds.count))) s, longest \(Int(slowest)) s (seed \(slowestSeed)); worst (box writes − 300) per data box × (1 − loss)² \(worst) (seed \(worstSeed))")
    }
}
