@testable import StreamEngine
import Testing

/// A listener whose peer has not joined yet: what it costs while it waits, and how soon it
/// serves the peer once it comes.
@Suite struct LoneListenerTests {
    /// One listener driven alone: every write succeeds, polls find nothing, and waiting reads
    /// stay parked until the test answers them.
    struct AloneListener {
        var machine: StreamMachine
        var now = StreamTime.zero
        var writes = 0
        var reads = 0
        /// The parked waiting reads, by box index.
        var waitingReads: [UInt64: OperationID] = [:]

        init(bytes: Int) throws {
            machine = try StreamMachine(
                address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 1549,
                configuration: StreamConfiguration(), durability: .automatic, now: .zero, randomSeed: 1)
            _ = try machine.appWrite(Array(repeating: 7, count: bytes), now: now)
        }

        /// Answers the machine's actions until it has none left.
        mutating func settle() {
            var actions = machine.takeActions()
            while !actions.isEmpty {
                for action in actions {
                    switch action {
                    case .write(let operation, _, _):
                        writes += 1
                        machine.writeCompleted(operation, result: .success(()), now: now)
                    case .read(let operation, _, _, .poll):
                        reads += 1
                        machine.readCompleted(operation, result: .success(nil), now: now)
                    case .read(let operation, _, let index, .wait):
                        reads += 1
                        waitingReads[index] = operation
                    case .cancel(let operation):
                        waitingReads = waitingReads.filter { $0.value != operation }
                    }
                }
                actions = machine.takeActions()
            }
        }

        /// Runs the machine's timers until `end`.
        mutating func run(until end: StreamTime) {
            settle()
            while let next = machine.nextDeadline, next < end {
                now = max(next, now + .milliseconds(1))
                machine.handleTimers(now: now)
                settle()
            }
            now = end
        }
    }

    /// Box writes and reads of a listener left alone for `duration` with 10 KB written (7 frames).
    func operationsWhileAlone(for duration: Duration) throws -> (writes: Int, reads: Int) {
        var listener = try AloneListener(bytes: 10_000)
        listener.run(until: .zero + duration)
        return (listener.writes, listener.reads)
    }

    /// Every outstanding ping used to be rewritten on each expiry, and one more made, up to 64:
    /// 2,124 box writes in the first hour and 13,540 in 4 h, each a paced tick on Katzenpost.
    /// Older pings then backed off on their own, up to 4 timeouts: 1,471 and 5,915. Until the
    /// peer first answers, the timeout now backs off as far as idle polling does,
    /// `maxIdlePollInterval` (5 minutes), instead of `maxRetransmitTimeout` (1 minute): 298 and
    /// 1,208. Its reads went from 454 and 1,634 to 337 and 1,333.
    @Test func aListenerNobodyJoinedRewritesLess() throws {
        let hour = try operationsWhileAlone(for: .seconds(3600))
        let fourHours = try operationsWhileAlone(for: .seconds(4 * 3600))
        #expect(hour.writes < 400, "\(hour.writes) box writes in the first hour")
        #expect(fourHours.writes < 1_500, "\(fourHours.writes) box writes in 4 h")
        #expect(fourHours.reads < 1_400, "\(fourHours.reads) box reads in 4 h")
    }

    /// The peer's first frame ends the long backoff: a listener alone for an hour resends what
    /// its dialer has not acknowledged within `maxRetransmitTimeout` (plus jitter) of the
    /// dialer's first frame, not up to 6¼ minutes later.
    @Test func theFirstFrameOfALateDialerEndsTheBackoff() throws {
        var listener = try AloneListener(bytes: 10_000)
        listener.run(until: .zero + .seconds(3600))
        #expect(listener.machine.timer.awaitsFirstAnswer)
        #expect(listener.machine.timer.timeout(jitter: 0) == .seconds(300))

        // The dialer joins and writes before it has read anything: its frame 0 acknowledges nothing.
        var dialer = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .dialer, boxSize: 1549,
            configuration: StreamConfiguration(), durability: .automatic, now: listener.now, randomSeed: 2)
        _ = try dialer.appWrite(Array("hello".utf8), now: listener.now)
        let frameZero = dialer.takeActions().compactMap { action -> [UInt8]? in
            if case .write(_, index: 0, let bytes) = action { return bytes }
            return nil
        }.first
        let box = try #require(frameZero)
        let read = try #require(listener.waitingReads[0], "the listener keeps a read parked on the dialer's box 0")
        let writesBefore = listener.writes
        let heard = listener.now
        listener.machine.readCompleted(read, result: .success(box), now: heard)
        #expect(!listener.machine.timer.awaitsFirstAnswer)
        #expect(listener.machine.timer.timeout(jitter: 0) == .seconds(60))
        listener.run(until: heard + .seconds(76))
        // All 7 data frames again (and the acknowledgement of the dialer's frame).
        #expect(listener.writes - writesBefore >= 7, "\(listener.writes - writesBefore) box writes after the dialer's first frame")
    }
}
