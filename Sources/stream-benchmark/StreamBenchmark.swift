import Foundation
import StreamEngine
import StreamEngineTesting

/// Measures the stream protocol on the deterministic simulation, and its CPU cost.
///
/// Protocol efficiency is measured in simulated time, so it is exact and repeatable
/// (``ProtocolBenchmark``): operations per delivered data box, goodput against the bound of the
/// in-flight budget, the Go original's settings through the same harness, low-rate latency.
/// CPU cost is measured as process CPU time, as a ratio to libsodium seal+open of as many boxes
/// in the same run (``CPUBenchmark``), so a noisy machine changes both sides alike.
@main
struct StreamBenchmark {
    /// The version printed by `--version`.
    static let version = "stream-benchmark 0.2.0"

    /// The text printed by `--help`.
    static let usage = """
        OVERVIEW: Measure the stream protocol: operations per data box, goodput and latency on the
        deterministic simulation (simulated time), and CPU cost against libsodium alone (process
        CPU time). Takes a few minutes.

        USAGE: stream-benchmark [--protocol | --cpu[=machine|stream]] [--help] [--version]
               stream-benchmark seeds <count> [--only <seed> | --from <seed>]

        OPTIONS:
          --protocol     Run only the protocol part (simulated time). With STREAM_BENCHMARK_CSV=DIR
                         in the environment it also writes CSV files for scripts/plot-benchmarks;
                         with STREAM_BENCHMARK_QUICK=1 it measures only our settings at loss 0,
                         0.1 and 0.3 and the low-rate latency (a few seconds, for tuning);
                         STREAM_BENCHMARK_WINDOW=m sets our window and read-ahead to m budgets
                         (1...16, default 6).
          --cpu          Run only the CPU part (StreamMachine pair and Stream pair against libsodium);
                         --cpu=machine or --cpu=stream runs one of the two (for profiling).
          -h, --help     Show this help and exit.
          --version      Show the version and exit.

        SUBCOMMANDS:
          seeds <count>  Run the random simulation seeds 1...count (as SimulationTests does) and
                         print each failure, the worst retransmission ratio and the mean and
                         longest simulated time; --only runs one
                         seed and prints its full diagnostics; --from <seed> runs
                         seed...count.
        """

    /// What to run.
    enum Selection {
        case all, protocolOnly, cpu(CPUBenchmark.Subjects)
    }

    /// Handles the command line: `--help`, `--version` and `seeds` run and exit; anything
    /// unknown is an error, so asking for help never starts a long run.
    static func parseArguments(_ arguments: [String]) -> Selection {
        guard let first = arguments.first else { return .all }
        if first == "seeds" {
            guard arguments.count >= 2, let count = UInt64(arguments[1]), count > 0 else { usageError("seeds needs a positive count") }
            var only: UInt64?
            var first: UInt64 = 1
            if arguments.count == 4, arguments[2] == "--only", let seed = UInt64(arguments[3]) {
                only = seed
            } else if arguments.count == 4, arguments[2] == "--from", let seed = UInt64(arguments[3]), (1...count).contains(seed) {
                first = seed
            } else if arguments.count != 2 {
                usageError("seeds takes a count and optionally --only <seed> or --from <seed> (1...count)")
            }
            SeedRunner.run(seeds: only.map { $0...$0 } ?? first...count, printingDiagnostics: only != nil)
            exit(0)
        }
        guard arguments.count == 1 else { usageError("unknown argument \(arguments[1])") }
        switch first {
        case "--protocol": return .protocolOnly
        case "--cpu": return .cpu(.both)
        case "--cpu=machine": return .cpu(.machine)
        case "--cpu=stream": return .cpu(.stream)
        case "-h", "--help", "help":
            print(usage)
            exit(0)
        case "--version":
            print(version)
            exit(0)
        default:
            usageError("unknown argument \(first)")
        }
    }

    /// Prints a usage error and exits with status 64.
    static func usageError(_ message: String) -> Never {
        FileHandle.standardError.write(Data("stream-benchmark: \(message)\n\n\(usage)\n".utf8))
        exit(64)
    }

    static func main() async {
        let selection = parseArguments(Array(CommandLine.arguments.dropFirst()))
        let megabyte = 1 << 20
        switch selection {
        case .all, .protocolOnly:
            ProtocolBenchmark.run(csvDirectory: ProcessInfo.processInfo.environment["STREAM_BENCHMARK_CSV"])
        case .cpu:
            break
        }
        switch selection {
        case .all:
            await CPUBenchmark.run(boxSize: ProtocolBenchmark.boxSize, machineBytes: 64 * megabyte, streamBytes: 64 * megabyte, runs: 3)
        case .cpu(let subjects):
            await CPUBenchmark.run(boxSize: ProtocolBenchmark.boxSize, machineBytes: 64 * megabyte, streamBytes: 64 * megabyte, runs: 3, subjects: subjects)
        case .protocolOnly:
            break
        }
    }
}
