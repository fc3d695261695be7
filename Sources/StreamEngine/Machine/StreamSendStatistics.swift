/// Why a stream's box writes were made: where its send ticks go.
public struct StreamSendStatistics: Sendable, Hashable {
    /// First sends of frames (including resends after a restore).
    public var firstSends = 0
    /// Resends because the retransmission timer expired.
    public var timeoutResends = 0
    /// Resends of frames a peer's selective acknowledgement skipped.
    public var sackResends = 0
    /// Resends of the frame the peer's reader said it waits on.
    public var waitedOnResends = 0
    /// Resends at once after a transient write failure.
    public var failureResends = 0
    /// Resends after an operation passed its deadline.
    public var deadlineResends = 0
    /// Second copies of a lone data frame, written when its first write completes: on a quiet
    /// stream only the retransmission timer would notice a box that was acknowledged but never
    /// stored, several round trips later.
    public var confirmationCopies = 0
    /// Timer resends found needless: the frame's acknowledgement came while the resend was
    /// still being written, so it was for an earlier copy (not themselves writes).
    public var spuriousTimeouts = 0

    /// Creates empty statistics.
    public init() {}

    /// Adds another machine's (or incarnation's) counts.
    public mutating func add(_ other: StreamSendStatistics) {
        firstSends += other.firstSends
        timeoutResends += other.timeoutResends
        sackResends += other.sackResends
        waitedOnResends += other.waitedOnResends
        failureResends += other.failureResends
        deadlineResends += other.deadlineResends
        confirmationCopies += other.confirmationCopies
        spuriousTimeouts += other.spuriousTimeouts
    }
}
