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

/// Runs random simulation seed `seed` and expects it to pass within `limit` of simulated time:
/// the check of each seed that once showed a defect.
func expectRandomSeedPasses(_ seed: UInt64, within limit: Duration) async {
    let parameters = StreamSimulation.Parameters.random(seed: seed)
    let report = await offCooperativePool { StreamSimulation.run(parameters) }
    #expect(report.passed, "seed \(seed): \(report)")
    #expect(report.simulatedTime < limit, "seed \(seed): \(report)")
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

/// Regression seeds and checks for the defects found in the adversarial review (issue 9).
@Suite struct SimulationDefectTests {
    /// Defect 3: one seed makes the same events at the same times in every process. The
    /// simulation used to iterate a dictionary while drawing random numbers; Swift seeds its
    /// hashing per process, so two runs in one process agreed while runs in two processes did
    /// not. Hence a recorded digest, not only two runs compared: a change of the engine's
    /// behaviour changes it too, and then it is recorded anew (the message prints it).
    @Test func aSeedRunsTheSameWayInEveryProcess() async {
        let parameters = StreamSimulation.Parameters.random(seed: 76)
        let (first, second) = await offCooperativePool { (StreamSimulation.run(parameters), StreamSimulation.run(parameters)) }
        #expect(first.passed, "\(first)")
        #expect(first.traceDigest == second.traceDigest)
        #expect(first.traceDigest == Self.seed76Digest, "seed 76 now has digest \(first.traceDigest)")
    }

    static let seed76Digest: UInt64 = 1_402_210_414_712_284_234

    /// Operations that never complete (an ARQ stuck on a departed courier) are cancelled at
    /// their deadline and issued again: no frame or read stays stuck behind them.
    @Test func operationsThatHangForEverDoNotStallTheStream() async {
        for seed in UInt64(1)...20 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.loss = 0.1
            parameters.hang = 0.05
            parameters.crashes = 1
            parameters.listenerBytes = 20_000
            parameters.dialerBytes = 10_000
            let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
            #expect(report.passed, "seed \(seed): \(report)")
            #expect(report.hungOperations > 0, "seed \(seed) hung nothing")
        }
    }

    /// Defect 1: at read-ahead 2, 23 % loss and window 6, acknowledgement frames and pings
    /// used to pile up and be resent on every timeout (12,886 box writes for about 26 KB). The
    /// simulation now fails any seed above its bound on writes per data box.
    @Test func noRetransmissionStormWithAShortReadAhead() async {
        for seed in UInt64(1)...20 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.loss = 0.23
            parameters.configuration.readAhead = 2
            parameters.configuration.sendWindow = 6
            parameters.listenerBytes = 13_000
            parameters.dialerBytes = 13_000
            let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
            #expect(report.passed, "seed \(seed): \(report)")
            let dataBoxes = report.dataBoxesBySide.reduce(0, +)
            #expect(report.boxWrites <= 12 * dataBoxes, "seed \(seed): \(report.boxWrites) writes for \(dataBoxes) data boxes")
        }
    }

    /// Defect 2: a read's retry backoff was never reset, so a box not yet written was retried
    /// at 30 s intervals; this seed missed the 4 h limit in 4 of 6 runs (1,755 s with a 2 s cap).
    @Test func readRetriesStayPromptOnSeed11808() async {
        await expectRandomSeedPasses(11808, within: .seconds(1800))
    }

    /// Defect 4: a pair closed both ways used to read 511 boxes in the following day. After
    /// its linger (answering a peer whose last acknowledgement was lost) it falls silent.
    @Test func closedStreamsStopAllIO() async {
        var parameters = StreamSimulation.Parameters(seed: 5)
        parameters.loss = 0.1
        parameters.observeAfterClose = .seconds(24 * 3600)
        let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
        #expect(report.finished, "\(report)")
        // Polls during the 10-minute linger, backing off from 1 s, the reads in flight at the
        // close, and at most `maxLingerRewrites` rounds of rewrites of what a peer ping asked for
        // (61 here, 55 without them): a few dozen in all, and none after the linger.
        #expect(report.operationsAfterClose <= 70, "\(report.operationsAfterClose) operations in the day after closing")
        parameters.observeAfterClose = .seconds(3600)
        let hour = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
        #expect(hour.operationsAfterClose == report.operationsAfterClose, "the hour after closing: \(hour.operationsAfterClose); the day: \(report.operationsAfterClose)")
    }

    /// A stream closed both ways lingers to answer a peer whose last acknowledgement was lost,
    /// but its idle polling used to back off to five minutes there: one of the peer's probe
    /// boxes lost a few times (49 % loss) left it two or three reads in its ten-minute linger,
    /// it fell silent, and the peer probed for the rest of the 4 h (random seed 2733 with the
    /// batch spread in the timeout: 15,509 writes for 30 data boxes). It now polls at least
    /// once per the peer's largest retransmission timeout while it lingers.
    @Test func aLingeringEndPollsAsOftenAsThePeerRetransmits() async {
        await expectRandomSeedPasses(2733, within: .seconds(3600))
    }

    /// With read-ahead 2, this end's reader waited on one of the peer's ack-only frames that
    /// was lost on every write; the peer had read everything and resends it only on reading a
    /// new frame saying so, and this end had made its 64 pings: neither moved again (random
    /// seed 5573, 49 % loss: 18,245 writes, not finished in 4 h). After repeated expiries
    /// this end now reads one box beyond its window, whose frame carries the peer's newest
    /// acknowledgements and lets the reader skip the lost ack-only frames.
    @Test func aReaderStuckBehindALostAcknowledgementProbesAhead() async {
        await expectRandomSeedPasses(5573, within: .seconds(3600))
    }

    /// The final handshake under heavy loss (both seeds failed on stop 18's engine, found among
    /// random seeds 6,001–30,000). Seed 28295 (45 % loss, window 1): the listener, closed both
    /// ways, had its last three acknowledgements lost on every write; the dialer's pings said it
    /// waited on the first, but the listener rewrote it only on reading a new ping, and none
    /// came through before its linger ended: the dialer probed for the rest of the 4 h. A
    /// lingering end now rewrites, on each poll, the frame the peer's latest ping waits on and
    /// its own newest frame. Seed 19883 (47 % loss): the listener polled the box of the
    /// dialer's oldest ping through its linger, while that ping, not the newest, was rewritten
    /// only once per four timeouts and lost on all five writes; the oldest ping is now
    /// rewritten on every expiry. Seeds 8497 and 13762 (40 and 46 % loss, with crashes; they
    /// failed once timer resends were paced, stop 20): the dialer lingered polling the box of
    /// a ping that was neither the oldest nor the newest, backed off because the listener's
    /// view of the dialer's position was stale, and lost on every write in the linger. No ping
    /// now backs off while the peer, heard from before, has been silent for as long as a
    /// lingering peer may be (`mayBeProbingALingeringPeer`).
    @Test(arguments: [UInt64(28295), 19883, 8497, 13762]) func theLastAcknowledgementReachesAProbingPeer(seed: UInt64) async {
        await expectRandomSeedPasses(seed, within: .seconds(3600))
    }

    /// The in-flight budget from the embedder holds: with a budget of 4 and a large window, a
    /// transfer completes and the machine never has more than 4 operations in flight.
    @Test func theOperationBudgetBoundsOperationsInFlight() async throws {
        var configuration = StreamConfiguration()
        configuration.sendWindow = 64
        configuration.readAhead = 32
        configuration.maxOperationsInFlight = 4
        for seed in UInt64(1)...5 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.loss = 0.1
            parameters.configuration = configuration
            parameters.listenerBytes = 60_000
            parameters.dialerBytes = 5_000
            let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
            #expect(report.passed, "seed \(seed): \(report)")
            #expect(report.maxOperationsInFlight.allSatisfy { $0 <= 4 }, "seed \(seed): \(report.maxOperationsInFlight)")
        }
    }

    /// The simulation counts each end's operations in flight by what they wait on (what
    /// `stream-benchmark` prints as where each end's budget goes): the means stay within the
    /// budget, reads wait on lost boxes (of data or of acknowledgements) only where writes are
    /// lost, and a receiver that only acknowledges spends more on reading stored boxes than on
    /// writing.
    @Test(arguments: [0.0, 0.2]) func theOperationsInFlightAreCountedByWhatTheyWaitOn(loss: Double) async throws {
        var parameters = StreamSimulation.Parameters(seed: 3)
        parameters.loss = loss
        parameters.configuration.maxOperationsInFlight = 8
        parameters.configuration.sendWindow = 32
        parameters.configuration.readAhead = 32
        parameters.listenerBytes = 200_000
        parameters.dialerBytes = 0
        let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
        #expect(report.passed, "\(report)")
        for side in 0..<2 {
            let operations = report.operationSeconds[side]
            #expect(operations.seconds > 0)
            let total = StreamSimulation.OperationSeconds.Kind.allCases.map { operations.mean($0) }.reduce(0, +)
            #expect(total > 1 && total <= 8, "side \(side): \(total) in flight on average")
            #expect(operations.mean(.readOfOwnBox) == 0, "end-to-end: no verification reads")
            #expect((operations.mean(.readOfLostBox) > 0) == (loss > 0), "side \(side): \(operations.mean(.readOfLostBox))")
        }
        let receiver = report.operationSeconds[1]
        #expect(receiver.mean(.readOfStoredBox) > receiver.mean(.write))
    }
}
