import Testing

@testable import StreamDaemon
@testable import StreamEngine

/// The daemon's fair scheduler: round robin, read bounds, the poll token bucket, cancellation.
@Suite struct OperationSchedulerTests {
    typealias Scheduler = OperationScheduler<Int>

    /// Distinct operation ids (the scheduler only compares them).
    struct IDs {
        private var next: UInt64 = 0
        mutating func callAsFunction() -> OperationID {
            next += 1
            return OperationID(rawValue: next)
        }
    }

    static func write(_ id: OperationID) -> StreamAction { .write(id, index: id.rawValue, bytes: [1]) }
    static func read(_ id: OperationID) -> StreamAction { .read(id, channel: .inbound, index: id.rawValue, mode: .wait) }
    static func poll(_ id: OperationID) -> StreamAction { .read(id, channel: .inbound, index: id.rawValue, mode: .poll) }

    static func configuration(maxInFlight: Int = 1024, maxInFlightReads: Int = 768, idlePollsPerMinute: Int = 600) -> SchedulerConfiguration {
        var configuration = SchedulerConfiguration()
        configuration.maxInFlight = maxInFlight
        configuration.maxInFlightReads = maxInFlightReads
        configuration.idlePollsPerMinute = idlePollsPerMinute
        return configuration
    }

    /// A stream's reads start lowest box first: a read issued again for the box the stream waits
    /// on goes ahead of the reads further ahead that queued before it.
    @Test func aStreamsReadsStartLowestBoxFirst() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 1, maxInFlightReads: 1), now: .zero)
        func read(_ id: UInt64, box: UInt64) -> StreamAction { .read(OperationID(rawValue: id), channel: .inbound, index: box, mode: .wait) }
        scheduler.enqueue(0, read(1, box: 0))
        let first = scheduler.start(now: .zero)
        #expect(first.map(\.operation.rawValue) == [1])
        for box in UInt64(1)...3 { scheduler.enqueue(0, read(10 + box, box: box)) }
        // The read of box 0 ends empty and is issued again, behind the reads of boxes 1 to 3.
        scheduler.finished(.read)
        scheduler.enqueue(0, read(2, box: 0))
        var order: [UInt64] = []
        while scheduler.queued > 0 {
            let jobs = scheduler.start(now: .zero)
            order += jobs.map(\.operation.rawValue)
            for job in jobs { scheduler.finished(job.lane) }
        }
        #expect(order == [2, 11, 12, 13])
    }

    @Test func smallStreamsAreNotStarvedByABulkStream() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 4), now: .zero)
        var ids = IDs()
        for _ in 0..<1_000 { scheduler.enqueue(0, Self.write(ids())) }
        for key in 1...10 { scheduler.enqueue(key, Self.write(ids())) }
        #expect(scheduler.queued == 1_010)

        // Run rounds of 4 slots: start what may start, then finish everything started.
        var startedKeys: [Int] = []
        var rounds = 0
        while startedKeys.filter({ $0 != 0 }).count < 10 {
            let jobs = scheduler.start(now: .zero)
            #expect(jobs.count == 4)
            #expect(scheduler.inFlight == 4)
            startedKeys += jobs.map(\.key)
            for job in jobs { scheduler.finished(job.lane) }
            rounds += 1
        }
        // Round robin: the bulk stream gets one turn per cycle, so the 10 small streams are done
        // after 11 operations (3 rounds of 4), not after the bulk stream's 1,000.
        #expect(rounds == 3)
        #expect(startedKeys.prefix(11).filter { $0 == 0 }.count == 1)
        #expect(Set(startedKeys.prefix(11)) == Set(0...10))
        #expect(scheduler.queued == 1_010 - startedKeys.count)
        #expect(scheduler.inFlight == 0)

        // Then the bulk stream has every slot, in FIFO order.
        let rest = scheduler.start(now: .zero)
        #expect(rest.allSatisfy { $0.key == 0 })
        let operations = rest.map(\.operation.rawValue)
        #expect(operations == operations.sorted())
    }

    @Test func writesGoFirstAndReadsStayWithinTheirBound() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 10, maxInFlightReads: 3), now: .zero)
        var ids = IDs()
        for key in 0..<5 {
            scheduler.enqueue(key, Self.read(ids()))
            scheduler.enqueue(key, Self.read(ids()))
        }
        for key in 0..<4 { scheduler.enqueue(key, Self.write(ids())) }
        let first = scheduler.start(now: .zero)
        // All 4 writes (queued last) start before any read, then reads up to their bound.
        #expect(first.map(\.lane) == [.write, .write, .write, .write, .read, .read, .read])
        #expect(scheduler.inFlightReads == 3)
        #expect(scheduler.inFlight == 7)
        // Reads are round robin too: three different streams.
        #expect(Set(first.filter { $0.lane == .read }.map(\.key)).count == 3)
        // No read starts while the bound is reached, but a new write does.
        scheduler.enqueue(9, Self.write(ids()))
        let second = scheduler.start(now: .zero)
        #expect(second.map(\.lane) == [.write])
        #expect(scheduler.inFlightReads == 3)
        // Finishing a read frees one read slot; finishing a write frees none for reads.
        scheduler.finished(.write)
        #expect(scheduler.start(now: .zero).isEmpty)
        scheduler.finished(.read)
        let third = scheduler.start(now: .zero)
        #expect(third.map(\.lane) == [.read])
        #expect(scheduler.inFlightReads == 3)
        #expect(scheduler.inFlight == 7)
        #expect(scheduler.queued == 6)
    }

    @Test func pollsSpendTokensFromTheBucket() {
        // 60 polls a minute: one token a second, a burst of 10 (ten seconds of budget).
        var scheduler = Scheduler(configuration: Self.configuration(idlePollsPerMinute: 60), now: .zero)
        var ids = IDs()
        for key in 0..<100 { scheduler.enqueue(key, Self.poll(ids())) }
        #expect(scheduler.nextTokenTime() == nil)  // tokens are available
        let burst = scheduler.start(now: .zero)
        #expect(burst.count == 10)
        #expect(burst.allSatisfy { $0.lane == .poll })
        for job in burst { scheduler.finished(job.lane) }
        // The bucket is empty: the next token is one second away.
        #expect(scheduler.start(now: .zero).isEmpty)
        #expect(scheduler.nextTokenTime() == StreamTime(nanoseconds: 1_000_000_000))
        // Half a second: no token yet, and the next is still due at 1s.
        #expect(scheduler.start(now: StreamTime(nanoseconds: 500_000_000)).isEmpty)
        #expect(scheduler.nextTokenTime() == StreamTime(nanoseconds: 1_000_000_000))
        #expect(scheduler.start(now: StreamTime(nanoseconds: 1_000_000_000)).count == 1)
        #expect(scheduler.nextTokenTime() == StreamTime(nanoseconds: 2_000_000_000))
        // Five seconds later: five polls.
        #expect(scheduler.start(now: StreamTime(nanoseconds: 6_000_000_000)).count == 5)
        // A long idle time refills only up to the burst.
        #expect(scheduler.start(now: StreamTime(nanoseconds: 600_000_000_000)).count == 10)
        #expect(scheduler.queued == 100 - 26)
        // Polls count as reads.
        #expect(scheduler.inFlightReads == 16)
    }

    @Test func pollsDoNotDelayWritesOrWaitingReads() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 3, maxInFlightReads: 2, idlePollsPerMinute: 600), now: .zero)
        var ids = IDs()
        scheduler.enqueue(1, Self.poll(ids()))
        scheduler.enqueue(2, Self.read(ids()))
        scheduler.enqueue(3, Self.write(ids()))
        let jobs = scheduler.start(now: .zero)
        #expect(jobs.map(\.lane) == [.write, .read, .poll])
        #expect(scheduler.nextTokenTime() == nil)  // nothing waits
    }

    @Test func cancellingAQueuedOperationRemovesIt() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 1), now: .zero)
        var ids = IDs()
        let write1 = ids(), write2 = ids(), read1 = ids(), poll1 = ids()
        scheduler.enqueue(1, Self.write(write1))
        scheduler.enqueue(1, Self.write(write2))
        scheduler.enqueue(2, Self.read(read1))
        scheduler.enqueue(3, Self.poll(poll1))
        scheduler.enqueue(3, .cancel(poll1))  // cancellations are not queued
        #expect(scheduler.queued == 4)
        let started = scheduler.start(now: .zero)
        #expect(started.map(\.operation) == [write1])
        // A running operation is not queued: cancel says so.
        let runningCancelled = scheduler.cancel(1, write1)
        #expect(!runningCancelled)
        let queuedCancelled = scheduler.cancel(1, write2)
        #expect(queuedCancelled)
        let cancelledTwice = scheduler.cancel(1, write2)
        #expect(!cancelledTwice)
        let pollCancelled = scheduler.cancel(3, poll1)
        #expect(pollCancelled)
        let otherStreamCancelled = scheduler.cancel(2, poll1)
        #expect(!otherStreamCancelled)  // wrong stream
        #expect(scheduler.queued == 1)
        scheduler.finished(.write)
        #expect(scheduler.start(now: .zero).map(\.operation) == [read1])
        scheduler.finished(.read)
        #expect(scheduler.start(now: .zero).isEmpty)
        #expect(scheduler.queued == 0 && scheduler.inFlight == 0 && scheduler.inFlightReads == 0)
    }

    /// A stream whose queued operations were all cancelled still gets its later ones started,
    /// in both lanes. The emptied queue used to stay behind without its ring entry, so the
    /// stream's next operations waited for ever while nothing ran (a transfer stalled that way
    /// under kpclientd-sim's `--disconnect-every`).
    @Test func aStreamWhoseQueuedOperationsWereCancelledStillGetsItsNextOnesStarted() {
        for action in [Self.write, Self.read] {
            var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 1), now: .zero)
            var ids = IDs()
            let blocker = ids(), cancelled = ids(), later = ids(), laterStill = ids()
            scheduler.enqueue(2, Self.write(blocker))
            #expect(scheduler.start(now: .zero).map(\.operation) == [blocker])
            scheduler.enqueue(1, action(cancelled))
            let wasQueued = scheduler.cancel(1, cancelled)
            #expect(wasQueued)
            // The emptied queue's ring entry comes up while nothing else is queued.
            scheduler.finished(.write)
            #expect(scheduler.start(now: .zero).isEmpty)
            scheduler.enqueue(1, action(later))
            scheduler.enqueue(1, action(laterStill))
            let first = scheduler.start(now: .zero)
            #expect(first.map(\.operation) == [later])
            scheduler.finished(first.first?.lane ?? .write)
            #expect(scheduler.start(now: .zero).map(\.operation) == [laterStill])
            #expect(scheduler.queued == 0)
        }
    }

    @Test func removeAllDropsAStreamsOperationsAndKeepsCountsConsistent() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 2, maxInFlightReads: 2), now: .zero)
        var ids = IDs()
        for _ in 0..<5 {
            scheduler.enqueue(1, Self.write(ids()))
            scheduler.enqueue(1, Self.read(ids()))
            scheduler.enqueue(2, Self.write(ids()))
        }
        scheduler.enqueue(1, Self.poll(ids()))
        scheduler.enqueue(2, Self.poll(ids()))
        #expect(scheduler.queued == 17)
        let running = scheduler.start(now: .zero)
        #expect(running.count == 2)
        #expect(Set(running.map(\.key)) == [1, 2])
        #expect(scheduler.queued == 15)

        scheduler.removeAll(for: 1)
        // Stream 1 had 4 writes, 5 reads and 1 poll still queued.
        #expect(scheduler.queued == 5)
        #expect(scheduler.inFlight == 2)  // running operations are the caller's to finish
        for job in running { scheduler.finished(job.lane) }

        var rest: [Scheduler.Job] = []
        while true {
            let jobs = scheduler.start(now: .zero)
            if jobs.isEmpty { break }
            rest += jobs
            for job in jobs { scheduler.finished(job.lane) }
        }
        #expect(rest.count == 5)
        #expect(rest.allSatisfy { $0.key == 2 })
        #expect(scheduler.queued == 0 && scheduler.inFlight == 0 && scheduler.inFlightReads == 0)

        // The stream can queue again after removeAll.
        scheduler.enqueue(1, Self.write(ids()))
        #expect(scheduler.start(now: .zero).map(\.key) == [1])
        #expect(scheduler.queued == 0 && scheduler.inFlight == 1)
    }

    /// A stream removed and queued again before its old turn came up takes one turn per round,
    /// not two (removeAll used to leave its ring entry behind, and enqueue added a second).
    @Test func aStreamQueuedAgainAfterRemoveAllTakesOneTurnPerRound() {
        var scheduler = Scheduler(configuration: Self.configuration(maxInFlight: 1), now: .zero)
        var ids = IDs()
        for _ in 0..<3 {
            scheduler.enqueue(1, Self.write(ids()))
            scheduler.enqueue(2, Self.write(ids()))
        }
        scheduler.removeAll(for: 1)
        for _ in 0..<3 { scheduler.enqueue(1, Self.write(ids())) }
        var order: [Int] = []
        while true {
            let jobs = scheduler.start(now: .zero)
            if jobs.isEmpty { break }
            order += jobs.map(\.key)
            for job in jobs { scheduler.finished(job.lane) }
        }
        #expect(order == [2, 1, 2, 1, 2, 1])
    }
}
