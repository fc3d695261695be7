/// How the client's `start_resending_*` requests ended, measured against their deadlines.
///
/// Durations run from submission to the daemon until the request ended (answered, timed out,
/// cancelled or failed by a lost connection). A request with a deadline should never end later
/// than its deadline plus scheduling delay: ``worstOverrun`` shows by how much the latest did.
public struct OperationStatistics: Sendable, Hashable {
    /// Requests that ended, with or without a deadline.
    public var finished = 0
    /// Requests that ended with the daemon's answer.
    public var answered = 0
    /// Requests that passed their deadline and were cancelled at the daemon.
    public var timedOut = 0
    /// Requests that ended and had a deadline.
    public var withDeadline = 0
    /// The longest time any request was outstanding.
    public var longestOutstanding: Duration = .zero
    /// The largest amount by which a request with a deadline outlived it (zero if none did).
    public var worstOverrun: Duration = .zero
    /// The longest deadline any request had.
    public var longestDeadline: Duration = .zero

    /// Creates empty statistics.
    public init() {}

    /// Counts one request that was outstanding for `elapsed` under `deadline`.
    mutating func record(elapsed: Duration, deadline: Duration?, answered wasAnswered: Bool, timedOut wasTimedOut: Bool) {
        finished += 1
        if wasAnswered { answered += 1 }
        if wasTimedOut { timedOut += 1 }
        longestOutstanding = max(longestOutstanding, elapsed)
        guard let deadline else { return }
        withDeadline += 1
        longestDeadline = max(longestDeadline, deadline)
        worstOverrun = max(worstOverrun, elapsed - deadline)
    }
}
