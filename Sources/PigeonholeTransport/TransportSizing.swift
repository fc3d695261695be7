import ThinClient

/// Sizes a stream's in-flight operation budget to what kpclientd can send.
///
/// kpclientd sends one packet per Poisson tick of rate λP, and a read or a checked write takes
/// two of them (the courier's ACK round, then the payload round). Operations beyond what those
/// ticks carry only wait in queues, where they age: the request's deadline, the stream's
/// retransmission timer and its operation timeout then fire before the operation has even left
/// the queue, and every resend takes a tick from new data. ``operationsInFlight(streams:limit:)``
/// gives `StreamConfiguration.maxOperationsInFlight`: λP × the expected time of one operation
/// (Little's law), shared by the active streams, plus the slot a stream keeps for reads;
/// ``retransmitTimeoutCeiling(longestPoll:)`` gives `maxRetransmitTimeout`, above the time an
/// acknowledgement takes when every operation waits for ticks. The thin client's ``ThinClientConfiguration/maxDaemonQueueDelay`` keeps kpclientd's own queue
/// short in the same spirit.
public struct TransportSizing: Sendable, Hashable {
    /// λP, in send ticks per second.
    public var ticksPerSecond: Double
    /// The network round trip of one packet (not counting kpclientd's queue).
    public var roundTrip: Duration
    /// Send ticks one operation takes (2: an ACK round and a payload round).
    public var ticksPerOperation: Double

    /// Creates a sizing; `ticksPerSecond` is λP per second (1000 × the PKI document's `LambdaP`).
    public init(ticksPerSecond: Double, roundTrip: Duration, ticksPerOperation: Double = 2) {
        self.ticksPerSecond = ticksPerSecond.isFinite && ticksPerSecond > 0 ? ticksPerSecond : 1
        self.roundTrip = max(.zero, roundTrip)
        self.ticksPerOperation = ticksPerOperation.isFinite ? max(1, ticksPerOperation) : 2
    }

    /// The expected time of one operation when queues are short: each of its rounds, and the
    /// wait for each round's tick.
    public var operationTime: Duration {
        let seconds = ticksPerOperation * (roundTrip.seconds + 1 / ticksPerSecond)
        return .nanoseconds(Int64(min(seconds, 86_400) * 1e9))
    }

    /// The largest retransmission timeout a stream needs (`StreamConfiguration.maxRetransmitTimeout`):
    /// twice its slowest expected acknowledgement loop, which is four operations (our write, the
    /// peer's read of it, the peer's acknowledgement write, our read of that) and two boxes found
    /// by polling, each up to `longestPoll` late (``PollSchedule/longest``).
    ///
    /// A timeout shorter than the loop resends frames whose acknowledgement is merely on its
    /// way, and each resend takes two ticks from new data.
    public func retransmitTimeoutCeiling(longestPoll: Duration) -> Duration {
        let loop = operationTime.seconds * 4 + max(0, longestPoll.seconds) * 2
        return .nanoseconds(Int64(min(2 * loop, 86_400) * 1e9))
    }

    /// A stream's in-flight operation budget when `streams` streams are active on one λP:
    /// λP × ``operationTime`` shared between them, rounded up, plus one slot for reads; at
    /// least 2 (the engine's minimum), at most `limit`.
    public func operationsInFlight(streams: Int, limit: Int = 1024) -> Int {
        let total = ticksPerSecond * operationTime.seconds
        let share = (total / Double(max(1, streams))).rounded(.up)
        return Int(min(max(2, share + 1), Double(max(2, limit))))
    }
}
