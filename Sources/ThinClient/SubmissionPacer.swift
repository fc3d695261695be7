/// Which queue a mixnet-path request waits in; lower lanes are admitted first.
///
/// kpclientd sends one packet per Poisson tick and serves its own resends first. The client
/// mirrors that: writes (and copy commands and `send_message`) go before reads that end at once
/// (polls), which go before reads the daemon keeps retrying until the box is written. Waiting
/// reads therefore never starve writes.
public enum SubmissionLane: Int, Sendable, Hashable, CaseIterable, Comparable {
    /// Writes, copy commands and `send_message`.
    case write = 0
    /// Reads with `no_retry_on_box_id_not_found` (they end after one round trip).
    case poll = 1
    /// Reads the daemon retries until the box is written.
    case wait = 2

    /// Whether `lhs` is served before `rhs`.
    public static func < (lhs: SubmissionLane, rhs: SubmissionLane) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Paces mixnet-path submissions to kpclientd's real capacity, with bounded FIFO waiters per lane.
///
/// kpclientd queues at most ``daemonQueueCapacity`` (16, `perClientRequestBuf`) requests per
/// connection that it has not sent yet, and sends one per Poisson tick of rate λP; when the queue
/// is full it stops reading the socket, which also stalls local requests. ARQs already sent are
/// not limited by the daemon. The pacer therefore keeps a model of the daemon's unsent queue:
/// the sequence numbers of requests submitted and not yet known to have left it. One leaves
///
/// - on a modelled tick (a drain at rate λP, from the PKI document), or
/// - when it, or any request submitted after it, gets its reply (the queue is FIFO, so a reply
///   proves that everything submitted earlier was sent too).
///
/// With ``maxQueueDelay`` set, the modelled queue is kept shorter than kpclientd's: at most the
/// requests λP sends in that time, so that requests wait in the client, where writes go first
/// and no deadline runs, rather than in the daemon's FIFO.
///
/// A request is admitted while the modelled queue holds fewer than ``daemonQueueCapacity`` and
/// fewer than ``maxInFlight`` requests are unanswered (a memory bound). It is plain state owned
/// by the ``ThinClient`` actor; waiting happens through the continuations it stores.
struct SubmissionPacer {
    typealias Waiter = CheckedContinuation<Void, any Error>

    /// The most requests unanswered at once (a memory bound, not the daemon's limit).
    let maxInFlight: Int
    /// The most requests believed queued at the daemon and not yet sent: the configured
    /// capacity, or fewer if ``maxQueueDelay`` is set (the requests λP sends in that time, at
    /// least one).
    var daemonQueueCapacity: Int {
        guard let maxQueueDelay else { return configuredCapacity }
        let sendable = (ticksPerSecond * maxQueueDelay.seconds).rounded(.down)
        return Int(min(max(1, sendable), Double(configuredCapacity)))
    }
    /// The daemon's queue capacity as configured (kpclientd's own is 16).
    let configuredCapacity: Int
    /// The longest a request should wait in the daemon's queue for its tick, or `nil`.
    let maxQueueDelay: Duration?
    /// The most waiters kept over all lanes; more fail at once.
    let maxWaiters: Int

    /// Requests admitted and not yet finished.
    private(set) var inFlight = 0
    /// Requests admitted and not yet written to the daemon: they hold a place in its queue.
    private var reserved = 0
    /// Sequence numbers of submitted requests not yet known to have been sent, ascending.
    private var unsent: [UInt64] = []
    private var unsentHead = 0
    /// The fraction of the next modelled tick elapsed (below 1 after every drain).
    private var credit = 0.0
    private var lastDrain: ContinuousClock.Instant
    /// λP in ticks per second.
    private(set) var ticksPerSecond: Double

    private var lanes: [[(id: UInt64, continuation: Waiter)]] = Array(repeating: [], count: SubmissionLane.allCases.count)
    private var heads: [Int] = Array(repeating: 0, count: SubmissionLane.allCases.count)

    init(
        maxInFlight: Int, daemonQueueCapacity: Int, maxQueueDelay: Duration? = nil, maxWaiters: Int, ticksPerSecond: Double,
        now: ContinuousClock.Instant
    ) {
        self.maxInFlight = maxInFlight
        self.configuredCapacity = daemonQueueCapacity
        self.maxQueueDelay = maxQueueDelay
        self.maxWaiters = maxWaiters
        self.ticksPerSecond = ticksPerSecond
        self.lastDrain = now
    }

    /// Requests believed queued at the daemon and not yet sent (including those admitted and
    /// about to be written).
    var unsentCount: Int { unsent.count - unsentHead + reserved }

    /// The number of requests waiting for admission, over all lanes.
    var waiterCount: Int { zip(lanes, heads).reduce(0) { $0 + $1.0.count - $1.1 } }

    /// Changes λP (a new PKI document); credit earned so far is kept.
    mutating func setRate(ticksPerSecond rate: Double, now: ContinuousClock.Instant) {
        drain(now: now)
        ticksPerSecond = rate
    }

    /// Spends the ticks modelled since the last call on the oldest unsent requests.
    mutating func drain(now: ContinuousClock.Instant) {
        let elapsed = now - lastDrain
        lastDrain = now
        guard ticksPerSecond > 0, elapsed > .zero else { return }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        credit += seconds * ticksPerSecond
        while credit >= 1, unsentHead < unsent.count {
            unsentHead += 1
            credit -= 1
        }
        if unsentHead == unsent.count {
            // Ticks with nothing of ours to send are lost (Poisson ticks are memoryless).
            credit = 0
        }
        compactUnsent()
    }

    /// How long until the next modelled tick frees a place in the daemon's queue, if one is
    /// needed: `nil` when nothing waits for the daemon's queue.
    func timeUntilNextDrain() -> Duration? {
        guard waiterCount > 0, inFlight < maxInFlight, unsentCount >= daemonQueueCapacity, ticksPerSecond > 0 else { return nil }
        let seconds = max(0, 1 - credit) / ticksPerSecond
        return .nanoseconds(Int64(min(seconds, 3600) * 1e9) + 1)
    }

    /// Whether a request may be submitted now (ignoring waiters).
    private var hasRoom: Bool { inFlight < maxInFlight && unsentCount < daemonQueueCapacity }

    /// Admits a request at once if there is room and nobody in the same or a higher lane waits.
    mutating func tryAdmit(lane: SubmissionLane) -> Bool {
        guard hasRoom else { return false }
        for other in SubmissionLane.allCases where other <= lane && heads[other.rawValue] < lanes[other.rawValue].count {
            return false
        }
        inFlight += 1
        reserved += 1
        return true
    }

    /// Records that an admitted request was written to the daemon with `sequence` (ascending).
    mutating func submitted(sequence: UInt64) {
        precondition(reserved > 0, "SubmissionPacer submitted a request it did not admit")
        reserved -= 1
        unsent.append(sequence)
    }

    /// Records requests written again after a reconnect (replays), in ascending order.
    mutating func resubmitted(sequences: [UInt64]) {
        unsent.append(contentsOf: sequences)
    }

    /// Queues a waiter, which is resumed once admitted.
    ///
    /// - Returns: `false` if the waiters are at their bound (the continuation is left untouched).
    mutating func enqueue(id: UInt64, lane: SubmissionLane, _ continuation: Waiter) -> Bool {
        guard waiterCount < maxWaiters else { return false }
        lanes[lane.rawValue].append((id, continuation))
        return true
    }

    /// A request finished. `answeredSequence` is its sequence number if the daemon answered it
    /// (proof that it and everything before it were sent); `nil` if it was abandoned.
    mutating func finished(answeredSequence: UInt64?) {
        precondition(inFlight > 0, "SubmissionPacer finished more requests than it admitted")
        inFlight -= 1
        if let answeredSequence {
            while unsentHead < unsent.count, unsent[unsentHead] <= answeredSequence {
                unsentHead += 1
            }
            compactUnsent()
        }
    }

    /// An admitted request gave up before it was submitted.
    mutating func abandonedBeforeSubmission() {
        precondition(inFlight > 0 && reserved > 0, "SubmissionPacer finished more requests than it admitted")
        inFlight -= 1
        reserved -= 1
    }

    /// Admits as many waiters as there is room for, in lane order, FIFO within a lane.
    ///
    /// - Returns: the continuations to resume (the caller resumes them).
    mutating func admitWaiters(now: ContinuousClock.Instant) -> [Waiter] {
        drain(now: now)
        var admitted: [Waiter] = []
        for lane in SubmissionLane.allCases {
            while hasRoom, let next = popFirst(lane) {
                inFlight += 1
                // Its place in the daemon's queue is reserved until it is submitted.
                reserved += 1
                admitted.append(next.continuation)
            }
            if !hasRoom { break }
        }
        return admitted
    }

    /// Removes a waiter that gave up (its task was cancelled).
    ///
    /// - Returns: its continuation, to be resumed by the caller, or `nil` if it was already admitted.
    mutating func removeWaiter(id: UInt64) -> Waiter? {
        for lane in SubmissionLane.allCases.map(\.rawValue) {
            if let index = lanes[lane][heads[lane]...].firstIndex(where: { $0.id == id }) {
                let removed = lanes[lane].remove(at: index)
                compact(lane)
                return removed.continuation
            }
        }
        return nil
    }

    /// Removes every waiter (when the client closes); the caller fails them.
    mutating func removeAllWaiters() -> [Waiter] {
        var all: [Waiter] = []
        for lane in SubmissionLane.allCases {
            while let next = popFirst(lane) { all.append(next.continuation) }
        }
        return all
    }

    /// Forgets the daemon's queue (a new connection starts with an empty one).
    mutating func resetDaemonQueue(now: ContinuousClock.Instant) {
        unsent.removeAll(keepingCapacity: true)
        unsentHead = 0
        credit = 0
        lastDrain = now
    }

    private mutating func popFirst(_ lane: SubmissionLane) -> (id: UInt64, continuation: Waiter)? {
        let l = lane.rawValue
        guard heads[l] < lanes[l].count else { return nil }
        let first = lanes[l][heads[l]]
        heads[l] += 1
        compact(l)
        return first
    }

    private mutating func compact(_ lane: Int) {
        if heads[lane] == lanes[lane].count {
            lanes[lane].removeAll(keepingCapacity: true)
            heads[lane] = 0
        } else if heads[lane] > 64 && heads[lane] * 2 > lanes[lane].count {
            lanes[lane].removeFirst(heads[lane])
            heads[lane] = 0
        }
    }

    private mutating func compactUnsent() {
        if unsentHead == unsent.count {
            unsent.removeAll(keepingCapacity: true)
            unsentHead = 0
        } else if unsentHead > 64 && unsentHead * 2 > unsent.count {
            unsent.removeFirst(unsentHead)
            unsentHead = 0
        }
    }
}
