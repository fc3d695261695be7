import Foundation
import KpclientdSim
import Testing

/// Help, versions, bind errors and latency flags of kpclientd-sim, stream-benchmark and `streamd demo`.
@Suite(.timeLimit(.minutes(4)))
struct CommandLineTests {
    @Test func bindErrorsNameTheAddressAndTheCause() async throws {
        try await TestSupport.withSimulator { sim in
            guard case .tcp(_, let port) = sim.listenAddress else { throw TestFailure("not TCP") }
            let result = try await ProductProcess.run("kpclientd-sim", ["--listen", "tcp:127.0.0.1:\(port)"], timeout: .seconds(20))
            #expect(result.status != nil && result.status != 0)
            #expect(result.stderr.contains("cannot listen on tcp:127.0.0.1:\(port)"), "\(result.stderr)")
            #expect(result.stderr.contains("already in use"))
            #expect(!result.stderr.contains("bind(descriptor"))
            #expect(!result.stderr.contains("errno"))
        }
    }

    @Test func simulatorHelpAndVersion() async throws {
        let help = try await ProductProcess.run("kpclientd-sim", ["--help"], timeout: .seconds(20))
        #expect(help.status == 0)
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")  // undo line wrapping
        #expect(text.contains("box plaintext and the envelope key in the clear"))
        #expect(text.contains("0600"))
        #expect(text.contains("0700"))
        #expect(text.contains("trace, debug, info, notice, warning, error or critical"))
        let version = try await ProductProcess.run("kpclientd-sim", ["--version"], timeout: .seconds(20))
        #expect(version.status == 0)
        #expect(version.stdout.contains("kpclientd-sim 0.1.0"))
        let bad = try await ProductProcess.run("kpclientd-sim", ["--log-level", "loud"], timeout: .seconds(20))
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("want trace, debug, info"))
    }

    @Test func benchmarkHelpPrintsHelpInsteadOfRunning() async throws {
        let help = try await ProductProcess.run("stream-benchmark", ["--help"], timeout: .seconds(10))
        #expect(help.status == 0)
        #expect(help.stdout.contains("USAGE: stream-benchmark"))
        #expect(!help.stdout.contains("Goodput"))
        let version = try await ProductProcess.run("stream-benchmark", ["--version"], timeout: .seconds(10))
        #expect(version.status == 0)
        #expect(version.stdout.contains("stream-benchmark 0.2.0"))
        let bad = try await ProductProcess.run("stream-benchmark", ["--bogus"], timeout: .seconds(10))
        #expect(bad.status == 64)
    }

    @Test func demoWorksAboveFiveHundredMillisecondsOfLatency() async throws {
        for arguments in [["--latency-ms", "600"], ["--latency", "900ms"]] {
            let result = try await ProductProcess.run(
                "streamd", ["demo", "--loss", "0", "--bytes", "2000"] + arguments, timeout: .seconds(100))
            #expect(result.status == 0, "\(arguments): \(result.stdout) \(result.stderr)")
            #expect(result.stdout.contains("identical"))
        }
    }

    @Test func demoLatencyFlags() async throws {
        let both = try await ProductProcess.run("streamd", ["demo", "--latency-ms", "5", "--latency", "5ms"], timeout: .seconds(20))
        #expect(both.status != 0 && both.stderr.contains("not both"))
        let tooLong = try await ProductProcess.run("streamd", ["demo", "--latency", "11s"], timeout: .seconds(20))
        #expect(tooLong.status != 0 && tooLong.stderr.contains("at most 10s"))
    }
}
