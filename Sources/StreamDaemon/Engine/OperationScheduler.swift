import StreamEngine

/// Shares the daemon's one kpclientd connection fairly between streams.
///
/// Every transport operation a stream's machine asks for is queued here and released under
/// three rules:
/// - at most ``SchedulerConfiguration/maxInFlight`` operations run at once, of which at most
///   ``SchedulerConfiguration/maxInFlightReads`` are reads, so writes always find room;
/// - writes go before reads, and within each lane streams take turns (round robin, one
///   operation per turn), so one bulk stream cannot starve the others;
/// - a stream's own writes go in the order it asked for them, and its reads lowest box first:
///   a read issued again (re-planned after its operation deadline, or after a failure) is
///   usually of the box the stream waits on, and goes ahead of its reads further ahead. In FIFO
///   order it queued behind them: with more idle streams than read slots (18 reads per idle
///   listener, 768 slots), a listener's read of its peer's first box came round only after its
///   reads of later boxes had each had a turn;
/// - polls of idle streams share a daemon-wide token bucket of
///   ``SchedulerConfiguration/idlePollsPerMinute``, so an idle daemon's request rate does not
///   grow with its number of streams.
///
/// It is a plain value driven by the ``StreamHost`` actor: no clock, no tasks.
struct OperationScheduler<Key: Hashable & Sendable>: Sendable {
    /// Which queue an operation waits in.
    enum Lane: Sendable, Hashable {
        /// A box write.
        case write
        /// A read the stream is waiting on (an active stream's read-ahead, or a verification read).
        case read
        /// A poll of an idle stream (``BoxReadMode/poll``), paid for with a budget token.
        case poll
    }

    /// One operation to run.
    struct Job: Sendable {
        var key: Key
        var operation: OperationID
        var action: StreamAction
        var lane: Lane
    }

    let configuration: SchedulerConfiguration
    /// Invariant: a stream has an entry in a lane's ring exactly when it has a queue in that lane
    /// (even an empty one); `take` drops a queue it finds empty, so the next `enqueue` adds the
    /// entry back, and `removeAll` drops both.
    private var writeQueues: [Key: FIFO<Job>] = [:]
    private var readQueues: [Key: FIFO<Job>] = [:]
    private var writeRing = FIFO<Key>()
    private var readRing = FIFO<Key>()
    private var polls = FIFO<Job>()
    private var tokens: Double
    private var refilledAt: StreamTime

    /// Operations running now.
    private(set) var inFlight = 0
    /// Reads and polls running now.
    private(set) var inFlightReads = 0
    /// Operations waiting to run.
    private(set) var queued = 0

    /// The most poll tokens that can accumulate: ten seconds of budget, at least one.
    private var burst: Double { max(1, Double(configuration.idlePollsPerMinute) / 6) }
    private var tokensPerNanosecond: Double { Double(configuration.idlePollsPerMinute) / 60e9 }

    init(configuration: SchedulerConfiguration, now: StreamTime) {
        self.configuration = configuration
        tokens = max(1, Double(configuration.idlePollsPerMinute) / 6)
        refilledAt = now
    }

    /// Queues one operation of stream `key`. Cancellations are not queued: see ``cancel(_:_:)``.
    mutating func enqueue(_ key: Key, _ action: StreamAction) {
        let job: Job
        switch action {
        case .write(let operation, _, _):
            job = Job(key: key, operation: operation, action: action, lane: .write)
        case .read(let operation, _, _, let mode):
            job = Job(key: key, operation: operation, action: action, lane: mode == .poll ? .poll : .read)
        case .cancel:
            return
        }
        queued += 1
        switch job.lane {
        case .write:
            if writeQueues[key] == nil { writeRing.append(key) }
            writeQueues[key, default: FIFO()].append(job)
        case .read:
            if readQueues[key] == nil { readRing.append(key) }
            let box = Self.box(of: action)
            readQueues[key, default: FIFO()].insert(job, beforeFirstWhere: { Self.box(of: $0.action) > box })
        case .poll:
            polls.append(job)
        }
    }

    /// Removes a queued operation; returns `false` if it is not queued (it may be running).
    mutating func cancel(_ key: Key, _ operation: OperationID) -> Bool {
        for lane in [Lane.write, .read] {
            let removed = withQueue(lane, key) { queue in queue.removeFirst { $0.operation == operation } != nil } ?? false
            if removed {
                queued -= 1
                return true
            }
        }
        if polls.removeFirst(where: { $0.key == key && $0.operation == operation }) != nil {
            queued -= 1
            return true
        }
        return false
    }

    /// Drops every queued operation of `key` (the stream was removed or halted).
    mutating func removeAll(for key: Key) {
        queued -= writeQueues.removeValue(forKey: key)?.count ?? 0
        queued -= readQueues.removeValue(forKey: key)?.count ?? 0
        let before = polls.count
        polls.removeAll { $0.key == key }
        queued -= before - polls.count
        // Its ring entries go too: left behind, a stream queued again would hold two and take
        // two turns per round.
        writeRing.removeAll { $0 == key }
        readRing.removeAll { $0 == key }
    }

    /// Takes the operations that may start now, in order, and counts them as running.
    mutating func start(now: StreamTime) -> [Job] {
        refill(now: now)
        var started: [Job] = []
        while inFlight < configuration.maxInFlight, let job = take(.write) {
            started.append(job)
        }
        while inFlight < configuration.maxInFlight, inFlightReads < configuration.maxInFlightReads, let job = take(.read) {
            started.append(job)
        }
        while inFlight < configuration.maxInFlight, inFlightReads < configuration.maxInFlightReads, tokens >= 1,
            let job = polls.popFirst()
        {
            tokens -= 1
            queued -= 1
            countStarted(job)
            started.append(job)
        }
        return started
    }

    /// Records that a started operation finished (completed, failed or was cancelled).
    mutating func finished(_ lane: Lane) {
        inFlight -= 1
        if lane != .write { inFlightReads -= 1 }
    }

    /// When the next poll token arrives, if polls are waiting for one.
    func nextTokenTime() -> StreamTime? {
        guard !polls.isEmpty, tokens < 1 else { return nil }
        let missing = (1 - tokens) / tokensPerNanosecond
        return StreamTime(nanoseconds: refilledAt.nanoseconds + Int64(missing.rounded(.up)))
    }

    private mutating func refill(now: StreamTime) {
        guard now > refilledAt else { return }
        tokens = min(burst, tokens + Double(now.nanoseconds - refilledAt.nanoseconds) * tokensPerNanosecond)
        refilledAt = now
    }

    /// Takes the next operation of a lane, round robin across streams.
    private mutating func take(_ lane: Lane) -> Job? {
        while let key = (lane == .write ? writeRing.popFirst() : readRing.popFirst()) {
            guard let job = withQueue(lane, key, { $0.popFirst() }) else {
                // Emptied by cancellations: drop the queue with its ring entry, so that the
                // stream's next operation puts it back in the ring. (A queue left behind empty
                // kept the stream out of the ring for good: its later operations were never
                // started, a stall found with kpclientd-sim's --disconnect-every.)
                if lane == .write { writeQueues[key] = nil } else { readQueues[key] = nil }
                continue
            }
            let more = withQueue(lane, key) { !$0.isEmpty } ?? false
            if more {
                if lane == .write { writeRing.append(key) } else { readRing.append(key) }
            } else {
                if lane == .write { writeQueues[key] = nil } else { readQueues[key] = nil }
            }
            queued -= 1
            countStarted(job)
            return job
        }
        return nil
    }

    /// The box an operation is for.
    private static func box(of action: StreamAction) -> UInt64 {
        switch action {
        case .write(_, let index, _), .read(_, _, let index, _): index
        case .cancel: 0
        }
    }

    private mutating func countStarted(_ job: Job) {
        inFlight += 1
        if job.lane != .write { inFlightReads += 1 }
    }

    private mutating func withQueue<T>(_ lane: Lane, _ key: Key, _ body: (inout FIFO<Job>) -> T?) -> T? {
        switch lane {
        case .write:
            guard writeQueues[key] != nil else { return nil }
            return body(&writeQueues[key]!)
        case .read:
            guard readQueues[key] != nil else { return nil }
            return body(&readQueues[key]!)
        case .poll:
            return nil
        }
    }
}
