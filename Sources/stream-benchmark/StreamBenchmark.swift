import Foundation
import StreamCrypto
import StreamEngine
import StreamEngineTesting

/// Measures the stream protocol on the deterministic simulation.
///
/// Protocol efficiency is measured in simulated time, so it is exact and repeatable: goodput
/// against the capacity bound `G* = S · min(C_w (1 − p) / L, C_r (1 − p) / L)` of a storage-
/// mediated stream (`daemon-practice.md` §4.2), where `S` is data bytes per box, `C_w` and `C_r`
/// the send window and read-ahead, `p` the loss and `L` the mean operation latency.
/// CPU cost is measured on the wall clock, as a ratio to sealing the same boxes with libsodium
/// alone in the same run, so a noisy machine changes both sides alike.
@main
struct StreamBenchmark {
    /// The version printed by `--version`.
    static let version = "stream-benchmark 0.1.0"

    /// The text printed by `--help`.
    static let usage = """
        OVERVIEW: Measure the stream protocol: goodput on the deterministic simulation (simulated
        time) and CPU cost per box against libsodium alone (wall clock). Takes about a minute.

        USAGE: stream-benchmark [--cpu[=machine|stream]] [--help] [--version]

        OPTIONS:
          --cpu          Run only the CPU part (StreamMachine pair and Stream pair against libsodium);
                         --cpu=machine or --cpu=stream runs one of the two (for profiling).
          -h, --help     Show this help and exit.
          --version      Show the version and exit.
        """

    /// Handles the command line: `--help` and `--version` print and exit; `--cpu[=machine|stream]`
    /// returns the CPU subjects to run alone; anything else is an error, so asking for help never
    /// starts a long run. Returns `nil` for the whole benchmark.
    static func parseArguments(_ arguments: [String]) -> CPUBenchmark.Subjects? {
        guard let first = arguments.first, arguments.count == 1 else {
            if arguments.count > 1 { usageError(arguments[1]) }
            return nil
        }
        switch first {
        case "--cpu":
            return .both
        case "--cpu=machine":
            return .machine
        case "--cpu=stream":
            return .stream
        case "-h", "--help", "help":
            print(usage)
            exit(0)
        case "--version":
            print(version)
            exit(0)
        default:
            usageError(first)
        }
    }

    /// Prints a usage error for `argument` and exits with status 64.
    static func usageError(_ argument: String) -> Never {
        FileHandle.standardError.write(Data("stream-benchmark: unknown argument \(argument)\n\n\(usage)\n".utf8))
        exit(64)
    }

    static func main() async {
        let cpuOnly = parseArguments(Array(CommandLine.arguments.dropFirst()))
        let megabyte = 1 << 20
        if let cpuOnly {
            await CPUBenchmark.run(boxSize: 1549, machineBytes: 64 * megabyte, streamBytes: 64 * megabyte, runs: 3, subjects: cpuOnly)
            return
        }
        var configuration = StreamConfiguration()
        configuration.sendWindow = 16
        configuration.readAhead = 18
        let latency = Duration.seconds(1)
        let boxSize = 1549
        let dataPerBox = boxSize - 16 - 29
        print("Goodput of a 1 MiB transfer, simulated time; box \(boxSize) B, window \(configuration.sendWindow), read-ahead \(configuration.readAhead), mean latency 1 s")
        print("loss   simulated s   goodput KiB/s   bound G* KiB/s   efficiency   box writes   distinct boxes   writes per data box")
        for loss in [0.0, 0.01, 0.1, 0.3] {
            var times: [Double] = []
            var writes = 0
            var distinct = 0
            for seed in UInt64(1)...5 {
                var parameters = StreamSimulation.Parameters(seed: seed)
                parameters.boxSize = boxSize
                parameters.loss = loss
                parameters.meanLatency = latency
                parameters.listenerBytes = megabyte
                parameters.dialerBytes = 0
                parameters.configuration = configuration
                parameters.maxWriteChunk = 64 * 1024
                let report = StreamSimulation.run(parameters)
                guard report.passed, let delivered = report.deliveredAt[1] else {
                    print("  loss \(loss) seed \(seed) failed: \(report)")
                    continue
                }
                times.append(Double(delivered.nanosecondsClamped) / 1e9)
                writes += report.boxWrites
                distinct += report.distinctBoxes
            }
            guard !times.isEmpty else { continue }
            let seconds = times.reduce(0, +) / Double(times.count)
            let goodput = Double(megabyte) / seconds / 1024
            let capacity = Double(dataPerBox) * Double(min(configuration.sendWindow, configuration.readAhead)) * (1 - loss) / 1.0 / 1024
            let boxes = Double(megabyte) / Double(dataPerBox)
            print(pad(String(format: "%.2f", loss), 7) + pad(String(format: "%.1f", seconds), 14) + pad(String(format: "%.1f", goodput), 16)
                  + pad(String(format: "%.1f", capacity), 17) + pad(String(format: "%.2f", goodput / capacity), 13)
                  + pad("\(writes / times.count)", 13) + pad("\(distinct / times.count)", 17)
                  + String(format: "%.2f", Double(writes / times.count) / boxes))
        }

        // The window, not the protocol, limits goodput: the ack loop takes about four latencies.
        print("\nWindow scaling at 10 % loss (1 MiB, 3 seeds):")
        print("window  read-ahead  goodput KiB/s  bound G* KiB/s  efficiency")
        for window in [16, 32, 64] {
            var seconds = 0.0
            for seed in UInt64(1)...3 {
                var parameters = StreamSimulation.Parameters(seed: seed)
                parameters.boxSize = boxSize
                parameters.loss = 0.1
                parameters.meanLatency = latency
                parameters.listenerBytes = megabyte
                parameters.dialerBytes = 0
                parameters.configuration.sendWindow = window
                parameters.configuration.readAhead = window + 2
                parameters.maxWriteChunk = 64 * 1024
                let report = StreamSimulation.run(parameters)
                seconds += Double((report.deliveredAt[1] ?? report.simulatedTime).nanosecondsClamped) / 1e9 / 3
            }
            let goodput = Double(megabyte) / seconds / 1024
            let capacity = Double(dataPerBox) * Double(window) * 0.9 / 1024
            print(pad("\(window)", 8) + pad("\(window + 2)", 12) + pad(String(format: "%.1f", goodput), 15)
                  + pad(String(format: "%.1f", capacity), 16) + String(format: "%.2f", goodput / capacity))
        }

        await CPUBenchmark.run(boxSize: boxSize, machineBytes: 64 * megabyte, streamBytes: 64 * megabyte, runs: 3)
    }

    static func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(1, width - text.count)) }
}
