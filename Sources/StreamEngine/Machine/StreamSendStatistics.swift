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
    /// Confirmation copies of a quiet stream's data frame, written with its first write: on a
    /// quiet stream only the retransmission timer would notice a box that was acknowledged but
    /// never stored, several round trips later.
    public var confirmationCopies = 0
    /// Timer resends found needless: the frame's acknowledgement came while the resend was
    /// still being written, so it was for an earlier copy (not themselves writes).
    public var spuriousTimeouts = 0

    /// Creates empty statistics.
    public init() {}

    /// Counts one write made for `reason`.
    mutating func count(_ reason: SendReason) {
        switch reason {
        case .first: firstSends += 1
        case .timeout: timeoutResends += 1
        case .sack: sackResends += 1
        case .waitedOn: waitedOnResends += 1
        case .failure: failureResends += 1
        case .deadline: deadlineResends += 1
        }
    }

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

/// Why a frame is (re)sent; kept with a frame that waits for room in the operation budget, so
/// that it is counted, and treated, for the reason it was due when it finally goes out.
enum SendReason: Sendable, Hashable {
    /// Its first send.
    case first
    /// The retransmission timer expired.
    case timeout
    /// A selective acknowledgement skipped it.
    case sack
    /// The peer's reader said it waits on it.
    case waitedOn
    /// Its write failed transiently.
    case failure
    /// Its write passed the operation deadline.
    case deadline
}
