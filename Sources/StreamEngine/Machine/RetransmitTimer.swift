/// Round-trip estimation and the retransmission timeout, after RFC 6298.
///
/// Samples come only from frames sent once (Karn's rule). The timeout doubles with each
/// consecutive expiry up to a cap, and each arming adds random jitter so that streams never
/// retransmit in lockstep.
///
/// The values derived from the estimates (``baseTimeout``, the backed-off timeout and the
/// machine's activity window) are computed when an estimate or the backoff changes, not on
/// every use: the machine reads them on every input, and `Duration` arithmetic is 128-bit.
struct RetransmitTimer: Sendable {
    private(set) var smoothedRTT: Duration?
    private(set) var rttVariation: Duration = .zero
    /// The smoothed spread of one acknowledgement's round trips: how much longer its oldest
    /// newly acknowledged frame waited than its youngest. One acknowledgement answers a batch
    /// of frames (ACK-NOW asks about four times per window), so the oldest frame of a batch
    /// waits longer than the youngest's round trip, which is what ``smoothedRTT`` samples.
    private(set) var batchSpread: Duration = .zero
    /// Consecutive expiries without progress.
    private(set) var backoffExponent = 0
    /// Whether the peer has never answered, so that the backoff goes up to
    /// ``StreamConfiguration/maxIdlePollInterval`` if that is longer than
    /// ``StreamConfiguration/maxRetransmitTimeout``.
    private(set) var awaitsFirstAnswer: Bool
    let configuration: StreamConfiguration

    /// The timeout without backoff or jitter.
    private(set) var baseTimeout: Duration
    /// The timeout with backoff, without jitter: `timeout(jitter: 0)`.
    private(set) var backedOffTimeout: Duration
    /// How long a stream stays active after its last activity:
    /// `max(idleAfter, 2 × timeout(jitter: 0))`, and the same in whole nanoseconds (clamped,
    /// as `StreamTime + Duration` takes it).
    private(set) var activeWindow: Duration
    private(set) var activeWindowNanoseconds: Int64

    init(configuration: StreamConfiguration, awaitsFirstAnswer: Bool) {
        self.configuration = configuration
        self.awaitsFirstAnswer = awaitsFirstAnswer
        baseTimeout = configuration.initialRetransmitTimeout
        backedOffTimeout = baseTimeout
        activeWindow = configuration.idleAfter
        activeWindowNanoseconds = 0
        derive()
    }

    /// Adds a round-trip sample, and the spread of the batch it came from.
    mutating func addSample(_ rtt: Duration, batchSpread spread: Duration) {
        batchSpread = smoothedRTT == nil ? spread : batchSpread.scaled(by: 0.875) + spread.scaled(by: 0.125)
        addSample(rtt)
    }

    /// Adds a round-trip sample.
    mutating func addSample(_ rtt: Duration) {
        if let srtt = smoothedRTT {
            let deviation = srtt > rtt ? srtt - rtt : rtt - srtt
            rttVariation = rttVariation.scaled(by: 0.75) + deviation.scaled(by: 0.25)
            smoothedRTT = srtt.scaled(by: 0.875) + rtt.scaled(by: 0.125)
        } else {
            smoothedRTT = rtt
            rttVariation = rtt / 2
        }
        derive()
    }

    /// Recomputes the derived values from the estimates and the backoff.
    private mutating func derive() {
        if let srtt = smoothedRTT {
            let rto = srtt + rttVariation * 4 + batchSpread * 2 + configuration.ackDelay
            baseTimeout = min(max(rto, configuration.minRetransmitTimeout), configuration.maxRetransmitTimeout)
        } else {
            baseTimeout = configuration.initialRetransmitTimeout
        }
        var rto = baseTimeout
        let cap = awaitsFirstAnswer
            ? max(configuration.maxRetransmitTimeout, configuration.maxIdlePollInterval) : configuration.maxRetransmitTimeout
        let doublings = max(0, backoffExponent - Self.retriesBeforeBackoff)
        for _ in 0..<min(doublings, 32) where rto < cap {
            rto = min(rto * 2, cap)
        }
        backedOffTimeout = rto
        activeWindow = max(configuration.idleAfter, rto * 2)
        activeWindowNanoseconds = activeWindow.nanosecondsClamped
    }

    /// Expiries that do not yet back off: on a lossy path a timeout usually means one lost
    /// box, not congestion, so the first retries keep the base timeout.
    static let retriesBeforeBackoff = 2

    /// The timeout with backoff and a jitter fraction in `0...1` scaled by the configured maximum.
    func timeout(jitter: Double) -> Duration {
        backedOffTimeout + backedOffTimeout.scaled(by: jitter * configuration.retransmitJitter)
    }

    /// Records an expiry without progress.
    mutating func backOff() {
        backoffExponent += 1
        derive()
    }

    /// Records the peer's first frame: the timeout's cap returns to
    /// ``StreamConfiguration/maxRetransmitTimeout``. (The backoff itself ends, as always, when
    /// a frame is newly acknowledged.)
    ///
    /// - Returns: whether the timeout changed (only if it had backed off beyond that cap).
    mutating func peerAnswered() -> Bool {
        guard awaitsFirstAnswer else { return false }
        awaitsFirstAnswer = false
        let before = backedOffTimeout
        derive()
        return backedOffTimeout != before
    }

    /// Records progress (a newly acknowledged frame).
    mutating func resetBackoff() {
        guard backoffExponent != 0 else { return }
        backoffExponent = 0
        derive()
    }

    /// Responds to a spurious timeout (after Eifel, RFC 4015): the copy before the timer resend
    /// was acknowledged `originalRTT` after it was sent, which is a valid round-trip sample (Karn's
    /// rule dropped it only because the resend made it ambiguous), and the backoff goes back
    /// to what it was before the needless expiry. Without this, a timeout shorter than the
    /// real round trip would make every frame a resend, so no sample would ever correct it.
    mutating func spuriousTimeout(originalRTT: Duration, restoring exponent: Int) {
        addSample(originalRTT)
        backoffExponent = min(backoffExponent, exponent)
        derive()
    }
}

/// A small deterministic pseudo-random generator (SplitMix64).
///
/// Streams seed one each for timer jitter, so that a simulation is reproducible; simulations
/// and tests use it for loss, latency and workloads. Never used for keys.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in `0..<1`.
    public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
