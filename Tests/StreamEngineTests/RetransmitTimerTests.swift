import Testing
@testable import StreamEngine

/// The retransmission timeout's estimates: RFC 6298's, plus the spread of batched
/// acknowledgements.
@Suite struct RetransmitTimerTests {
    func timer(awaitsFirstAnswer: Bool = false) -> RetransmitTimer {
        var configuration = StreamConfiguration()
        configuration.ackDelay = .milliseconds(100)
        configuration.maxRetransmitTimeout = .seconds(60)
        configuration.maxIdlePollInterval = .seconds(300)
        return RetransmitTimer(configuration: configuration, awaitsFirstAnswer: awaitsFirstAnswer)
    }

    /// Until the peer answers, expiries back off to the larger cap; from its first frame on,
    /// the usual cap holds.
    @Test func aPeerThatNeverAnsweredIsRetriedLessOften() {
        var waiting = timer(awaitsFirstAnswer: true)
        var answered = timer()
        for _ in 0..<20 {
            waiting.backOff()
            answered.backOff()
        }
        #expect(answered.timeout(jitter: 0) == .seconds(60))
        #expect(waiting.timeout(jitter: 0) == .seconds(300))
        let changed = waiting.peerAnswered()
        #expect(changed)
        #expect(!waiting.awaitsFirstAnswer)
        #expect(waiting.timeout(jitter: 0) == .seconds(60))
        let changedAgain = waiting.peerAnswered()
        #expect(!changedAgain)
        // A peer that answers before the backoff passes the usual cap changes nothing.
        var early = timer(awaitsFirstAnswer: true)
        early.backOff()
        let earlyChanged = early.peerAnswered()
        #expect(!earlyChanged)
    }

    /// Steady samples of 2 s give SRTT + 4·RTTVAR + ackDelay, the variation decaying toward zero.
    @Test func steadySamplesConvergeOnTheRoundTrip() {
        var timer = timer()
        for _ in 0..<200 { timer.addSample(.seconds(2)) }
        #expect(timer.smoothedRTT == .seconds(2))
        #expect(timer.baseTimeout >= .milliseconds(2100) && timer.baseTimeout < .milliseconds(2110))
    }

    /// An acknowledgement that answers a batch whose oldest frame waited 1 s longer than its
    /// youngest adds twice that spread to the timeout, so that the oldest frames of the next
    /// batches are not resent while their acknowledgement is on its way.
    @Test func theSpreadOfBatchedAcknowledgementsWidensTheTimeout() {
        var timer = timer()
        for _ in 0..<200 { timer.addSample(.seconds(2), batchSpread: .seconds(1)) }
        #expect(timer.batchSpread >= .milliseconds(999) && timer.batchSpread <= .seconds(1))
        #expect(timer.baseTimeout >= .milliseconds(4099) && timer.baseTimeout < .milliseconds(4110))
        // Single-frame acknowledgements (a spread of zero) let it decay again.
        for _ in 0..<200 { timer.addSample(.seconds(2), batchSpread: .zero) }
        #expect(timer.baseTimeout < .milliseconds(2110))
    }

    /// The spread never lifts the timeout above its ceiling.
    @Test func theSpreadStaysUnderTheLargestTimeout() {
        var timer = timer()
        for _ in 0..<50 { timer.addSample(.seconds(20), batchSpread: .seconds(30)) }
        #expect(timer.baseTimeout == .seconds(60))
    }
}
