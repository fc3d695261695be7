@testable import StreamEngine
import StreamEngineTesting
import Testing

/// Issue 9's protocol-efficiency changes: the operation budget, spurious timeouts, and their
/// effect on a bulk transfer under a budget.
@Suite struct ProtocolEfficiencyTests {
    /// Reads leave a slot of the budget free, so an app write goes out at once. Before, reads
    /// took the whole budget and a write waited for a read to complete (at low rates, a
    /// waiting read of the peer's next box, which completes only when the peer writes). The
    /// frame's confirmation copies then take the room of the farthest reads ahead.
    @Test func aWriteNeverWaitsForAReadToComplete() throws {
        var configuration = StreamConfiguration()
        configuration.maxOperationsInFlight = 4
        configuration.readAhead = 8
        var machine = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 512,
            configuration: configuration, now: .zero, randomSeed: 1)
        let reads = machine.takeActions().filter { if case .read = $0 { true } else { false } }
        #expect(reads.count == 3, "reads keep one slot of the budget of 4 free")
        try machine.appWrite([1, 2, 3], now: .zero)
        let actions = machine.takeActions()
        guard case .write(_, index: 0, _) = actions.first else {
            Issue.record("the first write goes out before any read is cancelled: \(actions)")
            return
        }
        let cancels = actions.filter { if case .cancel = $0 { true } else { false } }
        #expect(cancels.count == configuration.quietFrameCopies, "one read ahead cancelled per copy: \(actions)")
    }

    /// An acknowledgement that arrives while a timer resend is still being written is for the
    /// first copy (Eifel's test, without timestamps): it is a round-trip sample after all. Before, Karn's rule discarded it, so a
    /// timeout shorter than the round trip made every frame a resend and never corrected itself.
    @Test func anAcknowledgementJustAfterATimerResendCorrectsTheTimer() throws {
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var listener = try StreamMachine(address: address, role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        let dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, now: .zero, randomSeed: 2)
        try listener.appWrite([1, 2, 3], now: .zero)
        var readOfBox0: OperationID?
        // Frame 0's write and its confirmation copies complete at once.
        for _ in 0..<2 {
            for action in listener.takeActions() {
                switch action {
                case .write(let operation, _, _): listener.writeCompleted(operation, result: .success(()), now: .zero)
                case .read(let operation, .inbound, 0, _): readOfBox0 = operation
                default: break
                }
            }
        }
        #expect(listener.sendStatistics.confirmationCopies == StreamConfiguration().quietFrameCopies)
        // The round trip is longer than the initial timeout: the timer resends frame 0.
        let expiry = try #require(listener.nextDeadline)
        listener.handleTimers(now: expiry)
        #expect(listener.sendStatistics.timeoutResends == 1)
        #expect(listener.status.smoothedRTT == nil)
        // The dialer's acknowledgement of frame 0 arrives 0.1 s later, while the resend is
        // still being written: it is for the first copy.
        let arrival = expiry + .milliseconds(100)
        let ack = Frame(index: 0, dataOffset: 0, cumulativeAck: 1)
        let sealed = try #require(dialer.outboundSealer).seal(ack)
        listener.readCompleted(try #require(readOfBox0), result: .success(sealed), now: arrival)
        #expect(listener.sendStatistics.spuriousTimeouts == 1)
        let rtt = try #require(listener.status.smoothedRTT)
        #expect(rtt == arrival - .zero, "the first copy's round trip is the sample")
        #expect(listener.timer.baseTimeout > rtt)
    }

    /// A resend that waits for room in the operation budget goes out for the reason it was due
    /// for. Before, every resend taken from that queue counted as a timer resend and was
    /// treated as one: an acknowledgement arriving while it was written counted as a spurious
    /// timeout and reset the timer's backoff. In the bulk benchmark at p = 0 most "timer
    /// resends" were in fact selective-acknowledgement resends that had waited for a slot.
    @Test func aResendWaitingForTheBudgetKeepsItsReason() throws {
        var configuration = StreamConfiguration()
        configuration.maxOperationsInFlight = 2  // one write slot: the other is kept for reads
        configuration.quietFrameCopies = 0
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var listener = try StreamMachine(
            address: address, role: .listener, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 1)
        let dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, now: .zero, randomSeed: 2)
        var readOfBox0: OperationID?
        func writes() -> [(OperationID, UInt64)] {
            listener.takeActions().compactMap { action in
                switch action {
                case .write(let operation, let index, _): return (operation, index)
                case .read(let operation, .inbound, 0, _):
                    readOfBox0 = operation
                    return nil
                default: return nil
                }
            }
        }
        try listener.appWrite([1, 2, 3], now: .zero)
        let first = writes()
        #expect(first.map(\.1) == [0])
        listener.writeCompleted(first[0].0, result: .success(()), now: .zero + .milliseconds(10))
        try listener.appWrite([4, 5, 6], now: .zero + .milliseconds(20))
        let second = writes()
        #expect(second.map(\.1) == [1])
        // Frame 0 is due for a selective-acknowledgement resend while frame 1 holds the slot.
        listener.transmit(0, now: .zero + .milliseconds(30), for: .sack)
        #expect(writes().isEmpty, "no slot: the resend waits")
        listener.writeCompleted(second[0].0, result: .success(()), now: .zero + .milliseconds(40))
        let resend = writes()
        #expect(resend.map(\.1) == [0])
        #expect(listener.sendStatistics.sackResends == 1)
        #expect(listener.sendStatistics.timeoutResends == 0)
        // The acknowledgement of both frames arrives while the resend is written: it is not a
        // spurious timeout (the timer never fired).
        let ack = Frame(index: 0, dataOffset: 0, cumulativeAck: 2)
        let sealed = try #require(dialer.outboundSealer).seal(ack)
        listener.readCompleted(try #require(readOfBox0), result: .success(sealed), now: .zero + .milliseconds(50))
        #expect(listener.sendStatistics.spuriousTimeouts == 0)
        #expect(listener.unackedFrameKind(at: 0) == nil)
    }

    /// When the retransmission timer fires, the frames outstanding for a whole timeout are
    /// resent one at a time, `minRetransmitTimeout` apart, oldest first, with a ping that asks
    /// for an answer; an acknowledgement that makes progress ends the round, and its selective
    /// acknowledgements show which of the rest the peer really lacks. Before, they were all
    /// resent at once, and at 30 % loss four timer resends in five were of boxes already stored.
    @Test func timerResendsArePacedAndStopWhenTheAnswerComes() throws {
        var configuration = StreamConfiguration()
        configuration.quietFrameCopies = 0
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var listener = try StreamMachine(
            address: address, role: .listener, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 1)
        let dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, now: .zero, randomSeed: 2)
        var readOfBox0: OperationID?
        func writes(at time: StreamTime) -> [UInt64] {
            listener.takeActions().compactMap { action in
                switch action {
                case .write(let operation, let index, _):
                    listener.writeCompleted(operation, result: .success(()), now: time)
                    return index
                case .read(let operation, .inbound, 0, _):
                    readOfBox0 = operation
                    return nil
                default: return nil
                }
            }
        }
        try listener.appWrite([UInt8](repeating: 7, count: 1500), now: .zero)
        var sent: [UInt64] = []
        while case let batch = writes(at: .zero), !batch.isEmpty { sent += batch }
        #expect(sent == [0, 1, 2, 3], "four data frames, all written")
        // Nothing is acknowledged: the timer fires once for all four.
        let expiry = try #require(listener.nextDeadline)
        listener.handleTimers(now: expiry)
        #expect(writes(at: expiry) == [0, 4], "the oldest frame, and a ping (a new frame) that asks for an answer")
        #expect(listener.unackedFrameKind(at: 4) == .ping)
        #expect(listener.nextDeadline == expiry + configuration.minRetransmitTimeout)
        let paced = expiry + configuration.minRetransmitTimeout
        listener.handleTimers(now: paced)
        #expect(writes(at: paced) == [1], "the next one a moment later")
        #expect(listener.sendStatistics.timeoutResends == 2)
        // The peer's answer acknowledges frame 0 and the ping: the round ends, and the frames
        // it shows missing are resent for that reason: 2 and 3, which it skipped, then 1,
        // which it says it waits on.
        let answer = Frame(index: 0, dataOffset: 0, cumulativeAck: 1, sackRanges: [IndexRange(start: 4, count: 1)])
        let sealed = try #require(dialer.outboundSealer).seal(answer)
        let arrival = expiry + .seconds(1)
        listener.readCompleted(try #require(readOfBox0), result: .success(sealed), now: arrival)
        #expect(writes(at: arrival) == [2, 3, 1], "the frames the answer shows missing")
        #expect(listener.sendStatistics.sackResends == 2)
        #expect(listener.sendStatistics.waitedOnResends == 1)
        listener.handleTimers(now: arrival + configuration.minRetransmitTimeout)
        #expect(writes(at: arrival + configuration.minRetransmitTimeout).isEmpty)
        #expect(listener.sendStatistics.timeoutResends == 2)
    }

    /// A frame the peer's selective acknowledgement skips is resent sooner on a path whose
    /// writes fail (here two of the last few: 1.3·SRTT) than on one whose writes do not (2·SRTT):
    /// there it has almost always been overtaken, not lost (at no loss such resends were nearly
    /// all the writer's extra writes).
    @Test(arguments: [false, true]) func aSkippedFrameIsResentSoonerWhereWritesFail(writesFail: Bool) throws {
        var configuration = StreamConfiguration()
        configuration.quietFrameCopies = 0
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var listener = try StreamMachine(
            address: address, role: .listener, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 1)
        let dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, now: .zero, randomSeed: 2)
        var inboundReads: [UInt64: OperationID] = [:]
        func writes() -> [(OperationID, UInt64)] {
            listener.takeActions().compactMap { action in
                switch action {
                case .write(let operation, let index, _): return (operation, index)
                case .read(let operation, .inbound, let index, _):
                    inboundReads[index] = operation
                    return nil
                default: return nil
                }
            }
        }
        func deliver(_ frame: Frame, at time: StreamTime) throws {
            let sealed = try #require(dialer.outboundSealer).seal(frame)
            listener.readCompleted(try #require(inboundReads[frame.index]), result: .success(sealed), now: time)
        }
        let second = StreamTime.zero + .seconds(1)
        // Frame 0 goes out and is acknowledged a second later: SRTT 1 s.
        try listener.appWrite([0], now: .zero)
        for (operation, _) in writes() { listener.writeCompleted(operation, result: .success(()), now: .zero + .milliseconds(100)) }
        try deliver(Frame(index: 0, dataOffset: 0, cumulativeAck: 1), at: second)
        #expect(listener.status.smoothedRTT == .seconds(1))
        // Frames 1 to 4 go out; where writes fail, the first writes of frames 1 and 2 fail (and
        // are resent at once).
        for byte in UInt8(1)...4 { try listener.appWrite([byte], now: second) }
        var pending = writes()
        #expect(pending.map(\.1) == [1, 2, 3, 4])
        while let (operation, index) = pending.first {
            pending.removeFirst()
            let fails = writesFail && index <= 2 && listener.sendStatistics.failureResends < 2
            listener.writeCompleted(
                operation, result: fails ? .failure(BoxTransportError(.timeout, "lost")) : .success(()),
                now: second + .milliseconds(100))
            pending += writes()
        }
        #expect(listener.sendStatistics.failureResends == (writesFail ? 2 : 0))
        // 1.6 s later the peer has frames 2 and 4: it waits on frame 1, and frame 3 is skipped
        // (the sample of frame 4 makes SRTT 1.075 s: the wait is 1.42 s where writes fail, 2.15 s
        // where they do not).
        try deliver(Frame(index: 1, dataOffset: 0, cumulativeAck: 1, sackRanges: [IndexRange(start: 2, count: 1), IndexRange(start: 4, count: 1)]),
                    at: second + .milliseconds(1600))
        let resent = writes().map(\.1)
        #expect(resent.contains(1), "the frame the peer waits on is resent either way")
        #expect(resent.contains(3) == writesFail, "frame 3, skipped for 1.6 s: \(resent)")
        // Where writes fail, both holes go out as SACK resends; where they do not, frame 1 goes
        // out because the peer waits on it (after SRTT/4), and frame 3 waits.
        #expect(listener.sendStatistics.sackResends == (writesFail ? 2 : 0))
        #expect(listener.sendStatistics.waitedOnResends == (writesFail ? 0 : 1))
    }

    /// The wait before a selective-acknowledgement resend falls linearly from 2·SRTT where no
    /// write fails to 9/8·SRTT where 7 % of them do, and stays there beyond.
    @Test func theWaitForASkippedFrameFollowsTheShareOfFailedWrites() throws {
        var machine = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        for (share, wait) in [(0.0, 2.0), (0.035, 1.5625), (0.05, 1.375), (0.07, 1.125), (0.3, 1.125)] {
            machine.writeFailureShare = share
            #expect(abs(machine.sackResendAfter - wait) < 1e-9, "at \(share): \(machine.sackResendAfter)")
        }
    }

    /// While at least a tenth of its recent writes fail, a sender makes frames only up to half
    /// its window (but not below its operation budget); frames already made stay, and the whole
    /// window returns once writes succeed again. (On a lossy path more frames in flight only add
    /// frames overtaken while holes are recovered: at 30 % loss, writes per data box 1.79 → 1.64
    /// and goodput .24 → .32.)
    @Test(arguments: [(budget: 16, halvedWindow: 16), (budget: 24, halvedWindow: 24), (budget: 64, halvedWindow: 32)])
    func aSenderWhoseWritesFailHalvesItsWindow(budget: Int, halvedWindow: Int) throws {
        var configuration = StreamConfiguration()
        configuration.sendWindow = 32
        configuration.readAhead = 2
        configuration.maxOperationsInFlight = budget
        configuration.quietFrameCopies = 0
        var listener = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 512,
            configuration: configuration, now: .zero, randomSeed: 1)
        let capacity = Frame.dataCapacity(plaintextSize: try #require(listener.outboundSealer).plaintextSize, sackCount: 0)
        // Four frames go out, and each first write fails (each is resent at once).
        try listener.appWrite([UInt8](repeating: 1, count: capacity * 4), now: .zero)
        let first = listener.takeWrites()
        #expect(first.map(\.1) == [0, 1, 2, 3])
        for (operation, _, _) in first {
            listener.writeCompleted(operation, result: .failure(BoxTransportError(.timeout, "lost")), now: .zero)
        }
        var inFlight = listener.takeWrites()
        #expect(inFlight.map(\.1) == [0, 1, 2, 3], "the four resends")
        #expect(listener.writeFailureShare >= StreamMachine.windowHalvingWriteFailureShare)
        // Sixty more frames' worth: frames only up to the window in force.
        try listener.appWrite([UInt8](repeating: 2, count: capacity * 60), now: .zero)
        inFlight += listener.takeWrites()
        #expect(listener.sendWindowInForce == halvedWindow)
        #expect(listener.checkpoint.unackedWindowFrames == halvedWindow)
        // Writes succeed again: once the failure share falls below a tenth, the whole window is used.
        var time = StreamTime.zero
        while !inFlight.isEmpty {
            time = time + .milliseconds(100)
            for (operation, _, _) in inFlight { listener.writeCompleted(operation, result: .success(()), now: time) }
            inFlight = listener.takeWrites()
        }
        #expect(listener.writeFailureShare < StreamMachine.windowHalvingWriteFailureShare)
        #expect(listener.sendWindowInForce == 32)
        #expect(listener.checkpoint.unackedWindowFrames == 32)
        #expect(listener.sendStatistics.firstSends == 32)
    }

    /// The sender marks with ``Frame/Flags/ackNow`` the frames whose acknowledgement it needs
    /// soon: one per quarter window, the one that fills the window (no sooner than an eighth
    /// window after the last), and the one that empties the write buffer. The receiver
    /// acknowledges those after `ackDelay` and others only after its delayed-ack timer (a round
    /// trip, at most the initial timeout).
    /// Before, it acknowledged after `max(ackDelay, SRTT/4)` (100 ms before it had a sample: an
    /// end that only acknowledges rarely has one), about one ack-only box per five data boxes.
    /// On a lossy path (a tenth of an end's recent writes failed) the sender asks once per half
    /// window and the receiver's fallback waits twice as long: each acknowledgement costs more
    /// writes there (its own losses, and the resends a peer waiting on a lost one asks for). At
    /// 30 % loss, 100 benchmark seeds, ack-only boxes per data box went from .130 to .096 with
    /// `anEndWaitedOnForALostAcknowledgementRewritesItsNewest`.
    @Test(arguments: [false, true]) func theSenderAsksForAcknowledgementsWhenItNeedsThem(lossy: Bool) throws {
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var configuration = StreamConfiguration()
        configuration.sendWindow = 16
        configuration.readAhead = 16
        var listener = try StreamMachine(address: address, role: .listener, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 1)
        if lossy { listener.writeFailureShare = StreamMachine.windowHalvingWriteFailureShare }
        let reader = FrameSealer(inbound: try address.keys(as: .dialer).inbound!, boxSize: 512)
        // 20 frames' worth: the window of 16 (not halved: it is within the budget) fills before the buffer empties.
        let capacity = Frame.dataCapacity(plaintextSize: reader.plaintextSize, sackCount: 0)
        try listener.appWrite([UInt8](repeating: 7, count: capacity * 20), now: .zero)
        let writes = listener.takeWrites()
        #expect(writes.count == 16)
        let frames = try writes.map { try reader.open($0.2, index: $0.1) }
        let asking = frames.filter { $0.flags.contains(.ackNow) }.map(\.index)
        #expect(asking == (lossy ? [0, 8, 15] : [0, 4, 8, 12, 15]), "once per quarter (half) window, and the frame that fills it: \(asking)")

        // The receiver: a frame without the flag arms the delayed-ack timer for a round trip (the
        // initial timeout before one is measured); a frame with it is acknowledged after `ackDelay`.
        var dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 2)
        if lossy { dialer.writeFailureShare = StreamMachine.windowHalvingWriteFailureShare }
        var reads: [UInt64: OperationID] = [:]
        for action in dialer.takeActions() {
            if case .read(let operation, .inbound, let index, _) = action { reads[index] = operation }
        }
        let now = StreamTime.zero + .seconds(1)
        dialer.readCompleted(try #require(reads[1]), result: .success(writes[1].2), now: now)
        #expect(dialer.takeWrites().isEmpty)
        #expect(dialer.nextDeadline == now + configuration.initialRetransmitTimeout * (lossy ? 2 : 1))
        let asked = Int(asking[1])
        dialer.readCompleted(try #require(reads[UInt64(asked)]), result: .success(writes[asked].2), now: now)
        #expect(dialer.takeWrites().isEmpty)
        #expect(dialer.nextDeadline == now + configuration.ackDelay)
        dialer.handleTimers(now: now + configuration.ackDelay)
        let acks = dialer.takeWrites()
        #expect(acks.count == 1, "one ack-only frame")
        #expect(dialer.unackedFrameKind(at: acks[0].1) == .ackOnly)
    }

    /// A peer that says it waits on a lost ack-only frame gets this end's newest ack-only frame
    /// rewritten instead, when that lies within one read-ahead: it carries every
    /// acknowledgement of the lost one and lets the peer's reader skip it. Beyond the
    /// read-ahead the peer may not read it (without that bound 3 of 30,000 random seeds stalled,
    /// all with read-ahead 2), so the frame it waits on is rewritten.
    @Test(arguments: [(readAhead: 4, rewritten: UInt64(2)), (readAhead: 2, rewritten: UInt64(0))])
    func anEndWaitedOnForALostAcknowledgementRewritesItsNewest(readAhead: Int, rewritten: UInt64) throws {
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        var configuration = StreamConfiguration()
        configuration.readAhead = readAhead
        configuration.quietFrameCopies = 0
        var dialer = try StreamMachine(address: address, role: .dialer, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 2)
        let sealer = FrameSealer(outbound: try address.keys(as: .listener).outbound!, boxSize: 512)
        var reads: [UInt64: OperationID] = [:]
        func settle(at time: StreamTime) -> [UInt64] {
            dialer.takeActions().compactMap { action in
                switch action {
                case .read(let operation, .inbound, let index, _):
                    reads[index] = operation
                    return nil
                case .write(let operation, let index, _):
                    dialer.writeCompleted(operation, result: .success(()), now: time)
                    return index
                default: return nil
                }
            }
        }
        _ = settle(at: .zero)
        // Three listener frames, each asking for an acknowledgement: three ack-only frames.
        var time = StreamTime.zero
        for index in UInt64(0)..<3 {
            time = time + .seconds(1)
            let frame = Frame(index: index, flags: [.ackNow], dataOffset: index, data: [UInt8(index)])
            dialer.readCompleted(try #require(reads[index]), result: .success(sealer.seal(frame)), now: time)
            _ = settle(at: time)
            time = time + configuration.ackDelay
            dialer.handleTimers(now: time)
            #expect(settle(at: time) == [index], "ack-only frame \(index)")
            #expect(dialer.unackedFrameKind(at: index) == .ackOnly)
        }
        // The listener's next frame says its reader still waits on the dialer's frame 0.
        time = time + .seconds(10)
        let waiting = Frame(index: 3, dataOffset: 3, cumulativeAck: 0, data: [3])
        dialer.readCompleted(try #require(reads[3]), result: .success(sealer.seal(waiting)), now: time)
        #expect(settle(at: time) == [rewritten])
        #expect(dialer.sendStatistics.waitedOnResends == 1)
    }

    /// A bulk transfer under the benchmark's budget (`stream-benchmark --protocol`: 1 MiB,
    /// 1,549-B boxes, L = 1 s, window 64, read-ahead 64, 16 operations per end, its 5 seeds)
    /// at 10 % loss (now 1.40 writes, 1.14 reads and 0.09 ack-only boxes per data box):
    /// the writer made 1.62 box writes per data box before issue 9's changes (most of the extra
    /// were needless timer resends), the receiver 1.27 reads and 0.27 ack-only boxes (0.21
    /// before `ackNow`, at window 48 and read-ahead 32).
    @Test func bulkTransferUnderABudgetResendsLittle() async {
        var writes = 0, reads = 0, boxes = 0, ackOnly = 0
        for seed in UInt64(1)...5 {
            var parameters = StreamSimulation.Parameters(seed: seed)
            parameters.boxSize = 1549
            parameters.loss = 0.1
            parameters.meanLatency = .seconds(1)
            parameters.listenerBytes = 1 << 20
            parameters.dialerBytes = 0
            parameters.maxWriteChunk = 64 * 1024
            parameters.configuration.sendWindow = 64
            parameters.configuration.readAhead = 64
            parameters.configuration.maxOperationsInFlight = 16
            let report = await offCooperativePool { [parameters] in StreamSimulation.run(parameters) }
            #expect(report.passed, "seed \(seed): \(report)")
            writes += report.writesBySide[0]
            reads += report.readsBySide[1]
            boxes += report.dataBoxesBySide[0]
            ackOnly += report.ackOnlyWritesBySide[1]
        }
        let writesPerBox = Double(writes) / Double(boxes)
        let readsPerBox = Double(reads) / Double(boxes)
        #expect(writesPerBox < 1.45, "writer writes per data box: \(writesPerBox)")
        #expect(readsPerBox < 1.2, "receiver reads per data box: \(readsPerBox)")
        // Ack-only boxes: 0.27 per data box before; stale "waiting on" claims of the writer
        // (its frames carry the acknowledgement they had when made) no longer make the
        // receiver resend ack-only frames after a quarter round trip (now two), and the receiver
        // acknowledges when the writer asks (`ackNow`) rather than after a quarter round trip.
        // Issue 9's target: at most 0.1.
        let ackOnlyPerBox = Double(ackOnly) / Double(boxes)
        #expect(ackOnlyPerBox <= 0.1, "receiver ack-only boxes per data box: \(ackOnlyPerBox)")
    }

    /// An end that only acknowledges samples its round trip on ack-only frames; while the
    /// peer's reader is stuck on a lost one of them (read-ahead 2, 47 % loss), those samples
    /// grew to 542 s, so the frame the peer waited on was resent only every 542 s while the
    /// peer pinged on every timeout: random seed 2008 failed the storm bound (16,218 writes for
    /// 65 data boxes, not finished in 4 h). The waited-on resend now waits at most
    /// `maxRetransmitTimeout`.
    @Test func aStuckPeerIsAnsweredWithinTheLargestTimeout() async {
        await expectRandomSeedPasses(2008, within: .seconds(3600))
    }
}
