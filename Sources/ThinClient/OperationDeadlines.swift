/// How long a `start_resending_*` request may stay unanswered before the client gives up on it.
///
/// An ARQ sticks to one courier for its whole life; if that courier leaves the network it never
/// completes. When the deadline passes, the client cancels the request at the daemon and fails
/// it with ``ThinClientError/Code-swift.struct/timeout``, so that the caller can re-encrypt
/// (a fresh envelope may take another courier).
///
/// The deadline is `multiplier × SRTT + slop`, clamped to `floor...ceiling`, where SRTT is the
/// smoothed time from submission to reply of the client's completed requests (reads the daemon
/// keeps retrying until their box is written are not sampled). kpclientd itself resends after a
/// round trip plus 20 s, which is the default slop: the deadline leaves room for one resend.
public struct DeadlinePolicy: Sendable, Hashable {
    /// How many smoothed round trips to allow.
    public var multiplier: Double
    /// Added to the multiplied round trip (kpclientd's resend slop is 20 s).
    public var slop: Duration
    /// The shortest deadline.
    public var floor: Duration
    /// The longest deadline.
    public var ceiling: Duration
    /// The round trip assumed before any request has completed.
    public var initialRoundTrip: Duration

    /// Creates a policy; the defaults suit a real Katzenpost network.
    public init(
        multiplier: Double = 3, slop: Duration = .seconds(20), floor: Duration = .seconds(30),
        ceiling: Duration = .seconds(600), initialRoundTrip: Duration = .seconds(30)
    ) {
        self.multiplier = max(1, multiplier)
        self.slop = max(.zero, slop)
        self.floor = max(.milliseconds(1), floor)
        self.ceiling = max(self.floor, ceiling)
        self.initialRoundTrip = max(.zero, initialRoundTrip)
    }

    /// The deadline for a smoothed round trip (`nil`: no sample yet).
    public func deadline(smoothedRoundTrip: Duration?) -> Duration {
        let roundTrip = smoothedRoundTrip ?? initialRoundTrip
        let seconds = min(roundTrip.seconds * multiplier + slop.seconds, ceiling.seconds)
        let value = Duration.nanoseconds(Int64(seconds * 1e9))
        return min(max(value, floor), ceiling)
    }
}

/// The deadline of one `start_resending_encrypted_message` request.
public enum OperationDeadline: Sendable, Hashable {
    /// The client's ``ThinClientConfiguration/operationDeadline`` policy (none if that is `nil`).
    case automatic
    /// No deadline: the request waits until it is answered or cancelled.
    case none
    /// A fixed deadline, counted from submission to the daemon.
    case after(Duration)
}

/// A smoothed round-trip estimate (RFC 6298's SRTT and RTTVAR, gains 1/8 and 1/4).
struct RoundTripEstimator: Sendable {
    private(set) var smoothed: Double?
    private(set) var variation: Double = 0
    private(set) var samples = 0

    /// Adds a sample of `duration`.
    mutating func add(_ duration: Duration) {
        let sample = max(0, duration.seconds)
        samples += 1
        guard let current = smoothed else {
            smoothed = sample
            variation = sample / 2
            return
        }
        variation = 0.75 * variation + 0.25 * abs(current - sample)
        smoothed = 0.875 * current + 0.125 * sample
    }

    /// The smoothed round trip, or `nil` without samples.
    var smoothedDuration: Duration? {
        smoothed.map { .nanoseconds(Int64($0 * 1e9)) }
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension DeadlinePolicy {
    /// The policy with every duration divided by `speedup`, for a kpclientd-sim run
    /// `speedup` times faster than the network it models.
    public func speededUp(by speedup: Double) -> DeadlinePolicy {
        let k = speedup > 0 && speedup.isFinite ? speedup : 1
        func faster(_ duration: Duration) -> Duration { duration * (1 / k) }
        return DeadlinePolicy(
            multiplier: multiplier, slop: faster(slop), floor: faster(floor), ceiling: faster(ceiling),
            initialRoundTrip: faster(initialRoundTrip))
    }
}
