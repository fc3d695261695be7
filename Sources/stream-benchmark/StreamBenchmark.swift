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

        USAGE: stream-benchmark [--help] [--version]
               stream-benchmark seeds <count> [--only <seed>]

        SUBCOMMANDS:
          seeds <count>  Run the random simulation seeds 1...count (as SimulationTests does) and
                         print each failure and the worst retransmission ratio; --only runs one
                         seed and prints its full diagnostics.

        OPTIONS:
          -h, --help     Show this help and exit.
          --version      Show the version and exit.
        """

    /// Handles the command line: `--help` and `--version` print and exit; anything else is an
    /// error (the benchmark takes no arguments), so asking for help never starts a long run.
    static func parseArguments(_ arguments: [String]) {
        guard let first = arguments.first else { return }
        switch first {
        case "-h", "--help", "help":
            print(usage)
            exit(0)
        case "--version":
            print(version)
            exit(0)
        case "seeds":
            guard arguments.count >= 2, let count = UInt64(arguments[1]), count > 0 else { usageError("seeds needs a positive count") }
            var only: UInt64?
            if arguments.count == 4, arguments[2] == "--only", let seed = UInt64(arguments[3]) {
                only = seed
            } else if arguments.count != 2 {
                usageError("seeds takes a count and optionally --only <seed>")
            }
            SeedRunner.run(upTo: count, only: only)
            exit(0)
        default:
            usageError("unknown argument \(first)")
        }
    }

    static func usageError(_ message: String) -> Never {
        FileHandle.standardError.write(Data("stream-benchmark: \(message)\n\n\(usage)\n".utf8))
        exit(64)
    }

    static func main() {
        parseArguments(Array(CommandLine.arguments.dropFirst()))
        let megabyte = 1 << 20
        ProtocolBenchmark.run(csvDirectory: ProcessInfo.processInfo.environment["STREAM_BENCHMARK_CSV"])
        var configuration = StreamConfiguration()
        configuration.sendWindow = 16
        configuration.readAhead = 18
        let boxSize = ProtocolBenchmark.boxSize

        // CPU cost per box on the wall clock, against libsodium sealing alone (same run).
        let clock = ContinuousClock()
        let key = SecureRandom.bytes(32)
        let nonce = SecureRandom.bytes(24)
        let plaintext = SecureRandom.bytes(boxSize - 16)
        let sealCount = 20_000
        let sealStart = clock.now
        var sink = 0
        for _ in 0..<sealCount { sink &+= Int(SecretBox.seal(plaintext, key: key, nonce: nonce)[0]) }
        let sealPerBox = Double((clock.now - sealStart).nanosecondsClamped) / Double(sealCount)
        var parameters = StreamSimulation.Parameters(seed: 99)
        parameters.boxSize = boxSize
        parameters.listenerBytes = 4 * megabyte
        parameters.dialerBytes = 4 * megabyte
        parameters.configuration = configuration
        parameters.meanLatency = .milliseconds(50)
        parameters.maxWriteChunk = 64 * 1024
        let simulationStart = clock.now
        let report = StreamSimulation.run(parameters)
        let simulationNanos = Double((clock.now - simulationStart).nanosecondsClamped)
        let perBox = simulationNanos / Double(report.boxWrites)
        print("\nCPU per box written (both ends, whole simulation incl. checkpoint CBOR round trips): \(Int(perBox)) ns;"
              + " libsodium seal alone: \(Int(sealPerBox)) ns; ratio \(String(format: "%.1f", perBox / sealPerBox))x (sink \(sink & 1))")
    }

}
