#if canImport(Glibc)
import Glibc
#endif

/// What to measure and how often.
struct Options: Sendable {
    var mebibytes = 8
    var runs = 3
    var streams: Int?
    /// `startup`: seconds of RSS readings printed after the measurement (diagnostic).
    var memoryTrace: Int?
    var writeSize = 100
    var duration: Duration = .seconds(3)
    /// `durable`: how long every writer writes before the measured run (not counted).
    var warmUp: Duration = .zero
    /// `durable`: writes each connection keeps in flight (1: one at a time).
    var depth = 1
    /// Where scratch state directories go (its file system is the one measured).
    var directory = "/var/tmp"
    /// The settings of the `testnet` benchmark.
    var testnet = TestnetBenchmark.Settings()
}

/// Measures streamd itself, in process, against raw baselines taken in the same run.
///
/// `swift run -c release streamd-benchmark throughput|durable|startup [--mib N] [--runs N]
/// [--streams N] [--write-size B] [--seconds S] [--warm-up S] [--depth N] [--dir PATH] [--memory-trace S]`; `streamd-benchmark testnet
/// [--speedup K] [--idle-speedup K] [--kib N] [--loss P] [--churn-seconds S] [--write-every TICKS] [--max-rto S]
/// [--budget N] [--queue-delay S] [--ahead N]
///   [--window N] [--read-ahead N] [--ack-delay S] [--poll-max RTTS] [--only goodput|latency|idle]`
@main
struct StreamdBenchmark {
    static let usage = """
        usage: streamd-benchmark throughput|durable|startup [--mib N] [--runs N] [--streams N] [--write-size B] [--seconds S] [--warm-up S] [--depth N] [--dir PATH] [--memory-trace S]
               streamd-benchmark testnet [--speedup K] [--idle-speedup K] [--kib N] [--loss P] [--churn-seconds S]
                                         [--write-every TICKS] [--max-rto S] [--budget N] [--queue-delay S] [--ahead N]
                                         [--window N] [--read-ahead N] [--ack-delay S] [--poll-max RTTS]
                                         [--only goodput|latency|idle]
          throughput  N MiB app → streamd → app on one stream pair, vs a socketpair copy (default 8 MiB)
          durable     durable acknowledged writes/s from --streams writers (default 100), vs write+fdatasync/s;
                      --depth N: writes in flight per writer's connection (default 1, pipelined above)
          startup     create --streams streams (default 1000; 0 allowed): RSS per idle stream, where it went (mappings,
                      malloc arenas, SQLite, threads, the embedded kpclientd's operations); then start → ready;
                      --memory-trace S: RSS every second for S more seconds
          testnet     streams over kpclientd-sim's testnet profile, K times faster (default 100; idle hour 200):
                      goodput per direction (--kib, default 256) vs S·λP·(1−p), ticks per data box, small-write
                      latency, requests per idle hour; write loss --loss (0.1), a courier leaves every --churn-seconds
                      (600, 0: never); one 100-B write every --write-every ticks (4); --max-rto: the streams'
                      largest retransmission timeout in testnet s (default: sized from λP, 272); --budget: each end's
                      maxOperationsInFlight (default: sized from λP by TransportSizing); --queue-delay: the
                      thin clients' maxDaemonQueueDelay in testnet s (default 4; 0: none); --budget 1024
                      --ahead: how many boxes past the frontier waiting reads poll (default 2; 0: all);
                      --window, --read-ahead, --ack-delay (testnet s): the streams' settings (engine defaults);
                      --poll-max: the waiting reads' longest pause in round trips (default 4);
                      --budget 1024 --queue-delay 0 --ahead 0 --max-rto 60 is the setting before issue 9's transport work;
                      all figures in testnet time
        """

    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first else {
            print(usage)
            exit(2)
        }
        arguments.removeFirst()
        var options = Options()
        do {
            while !arguments.isEmpty {
                let flag = arguments.removeFirst()
                guard let value = arguments.first else { throw BenchmarkError("\(flag) needs a value") }
                arguments.removeFirst()
                func int() throws -> Int {
                    guard let number = Int(value), number > 0 else { throw BenchmarkError("\(flag) needs a positive integer") }
                    return number
                }
                switch flag {
                case "--mib": options.mebibytes = min(try int(), 1024)
                case "--runs": options.runs = min(try int(), 100)
                case "--streams":
                    // 0 is allowed: `startup --streams 0` measures what a daemon grows by without streams.
                    guard let streams = Int(value), streams >= 0 else { throw BenchmarkError("--streams needs a whole number") }
                    options.streams = min(streams, 100_000)
                case "--memory-trace": options.memoryTrace = min(try int(), 600)
                case "--write-size": options.writeSize = min(try int(), 65_536)
                case "--seconds": options.duration = .seconds(min(try int(), 600))
                case "--warm-up": options.warmUp = .seconds(min(try int(), 600))
                case "--depth": options.depth = min(try int(), 64)
                case "--dir": options.directory = value
                case "--speedup": options.testnet.speedup = Double(min(try int(), 1000))
                case "--idle-speedup": options.testnet.idleSpeedup = Double(min(try int(), 10_000))
                case "--kib": options.testnet.kibibytes = min(try int(), 65_536)
                case "--write-every": options.testnet.smallWriteTicks = Double(min(try int(), 3600))
                case "--max-rto": options.testnet.maxRetransmitSeconds = min(try int(), 86_400)
                case "--budget": options.testnet.operationBudget = min(max(2, try int()), 65_536)
                case "--window": options.testnet.sendWindow = min(try int(), 1024)
                case "--read-ahead": options.testnet.readAhead = min(max(2, try int()), 1024)
                case "--ack-delay":
                    guard let seconds = Int(value), seconds >= 0 else { throw BenchmarkError("--ack-delay needs a whole number") }
                    options.testnet.ackDelaySeconds = min(seconds, 600)
                case "--poll-max":
                    guard let pauses = Double(value), pauses >= 1, pauses <= 64 else { throw BenchmarkError("--poll-max needs 1...64 round trips") }
                    options.testnet.pollMaxPause = pauses
                case "--ahead":
                    guard let boxes = Int(value), boxes >= 0 else { throw BenchmarkError("--ahead needs a whole number") }
                    options.testnet.pollAhead = boxes == 0 ? Int.max : boxes
                case "--queue-delay":
                    guard let seconds = Int(value), seconds >= 0 else { throw BenchmarkError("--queue-delay needs a whole number") }
                    options.testnet.queueDelaySeconds = seconds == 0 ? nil : min(seconds, 3600)
                case "--only":
                    guard ["goodput", "latency", "idle"].contains(value) else { throw BenchmarkError("--only takes goodput, latency or idle") }
                    options.testnet.only = value
                case "--loss":
                    guard let p = Double(value), (0..<1).contains(p) else { throw BenchmarkError("--loss needs a probability in 0..<1") }
                    options.testnet.writeLoss = p
                case "--churn-seconds":
                    guard let seconds = Int(value), seconds >= 0 else { throw BenchmarkError("--churn-seconds needs a whole number") }
                    options.testnet.churn = seconds == 0 ? nil : .seconds(seconds)
                default: throw BenchmarkError("unknown flag \(flag)")
                }
            }
            switch name {
            case "throughput": try await ThroughputBenchmark.run(options: options)
            case "durable": try await DurableWritesBenchmark.run(options: options)
            case "startup": try await StartupBenchmark.run(options: options)
            case "testnet": try await TestnetBenchmark.run(options: options, settings: options.testnet)
            default: throw BenchmarkError("unknown benchmark \(name)\n\(usage)")
            }
        } catch {
            print("streamd-benchmark: \(error)")
            exit(1)
        }
    }
}
