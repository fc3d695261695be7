// Sending: frame creation, durable release, transmission, retransmission and acknowledgements.

extension StreamMachine {
    mutating func createFrames(now: StreamTime) {
        guard let sealer = outboundSealer else { return }
        let endToEnd = checkpoint.mode == .endToEnd
        var createdEliciting = false
        var createdAny = false
        while failure == nil, checkpoint.unackedWindowFrames < sendWindowInForce {
            let buffered = checkpoint.writeBufferCount
            let finDue = checkpoint.closeRequested && checkpoint.finIndex == nil
            guard buffered > 0 || finDue else { break }
            let sack = endToEnd ? currentSackRanges(limit: Frame.maxSackRangesWithData) : []
            let take = min(buffered, Frame.dataCapacity(plaintextSize: sealer.plaintextSize, sackCount: sack.count))
            let fin = finDue && take == buffered
            var flags: Frame.Flags = fin ? .fin : []
            if endToEnd, needsAckRequest(emptiesBuffer: take == buffered) {
                flags.insert(.ackNow)
                lastAckRequest = checkpoint.nextWriteIndex
            }
            if endToEnd, !fin, take == buffered, isQuiet(framesOutstanding: checkpoint.unackedWindowFrames + 1) {
                flags.insert(.quiet)
            }
            // The data is copied straight from the write buffer into the box and sealed there,
            // not copied into the frame first.
            let frame = makeFrame(flags: flags, sack: sack, data: [])
            let writeBuffer = checkpoint.writeBuffer  // Shares the ring's storage: nothing is copied.
            let ciphertext = sealer.seal(frame, dataCount: take) { writeBuffer.copy(from: 0, count: take, into: $0) }
            recordCreated(index: frame.index, dataLength: take, kind: fin ? .fin : .data, ciphertext: ciphertext)
            createdEliciting = true
            createdAny = true
        }
        guard endToEnd, failure == nil else { return }
        if probeRequested && !createdEliciting {
            let outstandingProbes = checkpoint.unacked.count(of: .ping)
            if outstandingProbes < Self.maxOutstandingProbes {
                let sack = currentSackRanges(limit: Frame.sackCapacity(plaintextSize: sealer.plaintextSize))
                emitFrame(makeFrame(flags: [.ping, .ackNow], sack: sack, data: []), kind: .ping, sealer: sealer)
                createdAny = true
            }
        }
        probeRequested = false
        if !createdAny, let due = ackDeadline, now >= due, checkpoint.inbound != nil {
            // Ack-only frames are kept until the peer acknowledges them, which an honest peer does
            // with every frame it sends; one that keeps eliciting acks without ever acknowledging
            // them would make that set grow without bound.
            let retained = checkpoint.unacked.count(of: .ackOnly)
            guard retained < Self.maxRetainedAckOnlyFrames else {
                fail(StreamError(.protocolViolation, "the peer left \(retained) acknowledgement frames unacknowledged"))
                return
            }
            let sack = currentSackRanges(limit: Frame.sackCapacity(plaintextSize: sealer.plaintextSize))
            emitFrame(makeFrame(flags: [], sack: sack, data: []), kind: .ackOnly, sealer: sealer)
            createdAny = true
        }
        if createdAny {
            ackDeadline = nil
            elicitingSinceAck = 0
        }
    }

    /// Whether the data frame about to be created asks the peer to acknowledge at once
    /// (``Frame/Flags/ackNow``): when it empties the write buffer or fills the window (without
    /// an acknowledgement the sender would stall), and once per quarter window otherwise, so
    /// that acknowledgements come about four times per window rather than per few frames; on a
    /// lossy path (`isOnALossyPath`) once per half window, where the window is halved anyway
    /// and each acknowledgement costs more writes (its own losses, and the resends a peer that
    /// waits on a lost one asks for).
    func needsAckRequest(emptiesBuffer: Bool) -> Bool {
        let window = configuration.sendWindow
        let since = lastAckRequest.map { checkpoint.nextWriteIndex &- $0 } ?? UInt64.max
        if emptiesBuffer { return true }
        if checkpoint.unackedWindowFrames + 1 >= window { return since >= UInt64(max(1, window / 8)) }
        return since >= UInt64(max(1, window / (isOnALossyPath ? 2 : 4)))
    }

    func makeFrame(flags: Frame.Flags, sack: [IndexRange], data: [UInt8]) -> Frame {
        var flags = flags
        if checkpoint.finIndex != nil { flags.insert(.fin) }  // FIN is repeated on every later frame.
        let endToEnd = checkpoint.mode == .endToEnd
        return Frame(
            index: checkpoint.nextWriteIndex, flags: flags, dataOffset: checkpoint.framedBytes,
            cumulativeAck: endToEnd ? checkpoint.nextReadIndex : 0, sackRanges: sack, data: data)
    }

    mutating func emitFrame(_ frame: Frame, kind: FrameKind, sealer: FrameSealer) {
        recordCreated(index: frame.index, dataLength: frame.data.count, kind: kind, ciphertext: sealer.seal(frame))
    }

    /// Records a sealed new frame and queues its first send for when the record is durable.
    mutating func recordCreated(index: UInt64, dataLength: Int, kind: FrameKind, ciphertext: [UInt8]) {
        recordOrFail(.frameCreated(index: index, dataLength: dataLength, kind: kind, ciphertext: ciphertext))
        gatedWrites.append((sequence: lastSequence, index: index))
    }

    /// The ranges of peer frames held above the cumulative acknowledgement, lowest first, at
    /// most `limit` of them.
    func currentSackRanges(limit: Int) -> [IndexRange] {
        var ranges: [IndexRange] = []
        for index in checkpoint.pending.keys.sorted() where index >= checkpoint.nextReadIndex {
            if let last = ranges.last, last.end == index, last.count < UInt32.max {
                ranges[ranges.count - 1].count += 1
            } else {
                if ranges.count == limit { break }
                ranges.append(IndexRange(start: index, count: 1))
            }
        }
        return ranges
    }

    /// Sends frames whose creation is durable, in index order.
    mutating func releaseGatedWrites(now: StreamTime) {
        var released = 0
        for entry in gatedWrites {
            guard entry.sequence <= durableSequence else { break }
            released += 1
            transmit(entry.index, now: now, for: .first)
        }
        gatedWrites.removeFirst(released)
    }

    /// Writes a retained frame's exact ciphertext.
    mutating func transmit(_ index: UInt64, now: StreamTime, for reason: SendReason) {
        guard let frame = checkpoint.unacked[index], sendRecords[index]?.inFlight == nil else { return }
        guard canStartWrite else {
            if budgetWaiting[index] == nil { budgetWaiting[index] = reason }
            return
        }
        if !budgetWaiting.isEmpty { budgetWaiting[index] = nil }
        sendStatistics.count(reason)
        let operation = newOperation()
        writeOperations[operation] = WriteOperation(index: index, started: now)
        actions.append(.write(operation, index: index, bytes: frame.ciphertext))
        let backoffBeforeResend = reason == .timeout ? timerResendBackoff : nil
        let resent = sendRecords.update(at: index) { record -> Bool in
            record.transmissions += 1
            record.inFlight = operation
            record.backoffBeforeTimerResend = backoffBeforeResend
            record.sentBeforeTimerResend = reason == .timeout ? record.lastSent : nil
            record.lastSent = now
            return true
        } ?? false
        if !resent {
            sendRecords[index] = SendRecord(firstSent: now, lastSent: now, transmissions: 1, inFlight: operation)
            if needsConfirmationCopy(index) {
                for _ in 0..<configuration.quietFrameCopies { transmitConfirmationCopy(index, now: now) }
            }
        }
        if retransmitAt == nil && frame.kind.elicitsAck { armRetransmitTimer(now: now) }
    }

    /// Arms the retransmission timer for the oldest frame awaiting an answer (never earlier
    /// than `minRetransmitTimeout` from now), or stops it if nothing needs acknowledging.
    mutating func armRetransmitTimer(now: StreamTime) {
        var oldest: StreamTime?
        let pings = unackedPingRange
        for (index, frame) in checkpoint.unacked where frame.kind.elicitsAck {
            guard let record = sendRecords[index] else { continue }
            // A frame in flight, or queued for the budget, is about to be sent: it cannot have timed out.
            let sent = record.inFlight == nil && (budgetWaiting.isEmpty || budgetWaiting[index] == nil)
                ? timerClock(index, kind: frame.kind, record: record, pings: pings, now: now) : now
            if oldest.map({ sent < $0 }) ?? true { oldest = sent }
        }
        guard let oldest else {
            retransmitAt = nil
            timerRound = nil
            return
        }
        let due = max(oldest + timer.timeout(jitter: random.unit()), now + configuration.minRetransmitTimeout)
        retransmitAt = timerRound.map { min($0.nextAt, due) } ?? due
    }

    /// The oldest and the newest unacknowledged ping.
    var unackedPingRange: (oldest: UInt64, newest: UInt64)? {
        guard checkpoint.unacked.count(of: .ping) > 0 else { return nil }
        var range: (oldest: UInt64, newest: UInt64)?
        for (index, frame) in checkpoint.unacked where frame.kind == .ping {
            range = (min(range?.oldest ?? index, index), max(range?.newest ?? index, index))
        }
        return range
    }

    /// When frame `index` counts as last sent, for the retransmission timer.
    ///
    /// Pings other than the oldest, the newest and those within one read-ahead of the frame the
    /// peer last said it waits on back off on their own: each resend doubles the wait before the
    /// next, up to `2^maxPingBackoffDoublings` timeouts, short enough that a peer lingering after its
    /// close (`closeLinger`) still sees a lost one rewritten. A ping carries no data, so a lost
    /// one holds the peer's reader only where it reads: an active reader reads past it and
    /// skips it, an idle one polls only the box it waits on. Rewriting every outstanding ping
    /// on each expiry made a listener nobody had joined yet rewrite up to 64 a minute
    /// (`LoneListenerTests`). The oldest is rewritten on each expiry too: a peer that has read
    /// every frame below it polls its box, and the frame the peer last said it waits on may be
    /// stale (its acknowledgements lost); backed off to one rewrite per four timeouts, its
    /// copies were all lost within a lingering peer's last polls (random seed 19883, 47 %
    /// loss: the listener's linger ended with the dialer's ping 31 lost on 5 writes, and the
    /// dialer probed for the rest of the 4 h).
    func timerClock(_ index: UInt64, kind: FrameKind, record: SendRecord, pings: (oldest: UInt64, newest: UInt64)?, now: StreamTime) -> StreamTime {
        let waitedOn = checkpoint.peerCumulativeAck
        // Pings below `waitedOn` are acknowledged, so never retained here.
        guard kind == .ping, index != pings?.newest, index != pings?.oldest, index >= waitedOn &+ UInt64(configuration.readAhead),
              !mayBeProbingALingeringPeer(now: now)
        else {
            return record.lastSent
        }
        let doublings = min(max(record.transmissions - 1, 0), Self.maxPingBackoffDoublings)
        return record.lastSent + timer.backedOffTimeout * ((1 << doublings) - 1)
    }

    /// Whether the peer, heard from before, has been silent for between two largest timeouts
    /// (`maxRetransmitTimeout`) and `closeLinger` plus one: then it may be an end closed both ways that lingers, polling
    /// only the box it waits on, and this end's view of where its reader stands (from its
    /// latest frames read here) may be stale. Every outstanding ping is then rewritten on each
    /// expiry, none backed off: one of them is the box the peer polls, and its linger ends after
    /// `closeLinger`. With the backoff, random seeds 8497 and 13762 (40–46 % loss, crashes)
    /// stalled: the peer's last acknowledgements were lost, and the ping it polled, neither the
    /// oldest nor the newest, was rewritten once per four timeouts, all copies lost within its
    /// linger. Outside that span pings back off as before: a peer silent for longer has stopped
    /// lingering, and an active one reads past a lost ping.
    func mayBeProbingALingeringPeer(now: StreamTime) -> Bool {
        guard let heard = peerHeardAt else { return false }
        let silence = now - heard
        let maxRTO = configuration.maxRetransmitTimeout
        return silence >= maxRTO * 2 && silence <= configuration.closeLinger + maxRTO
    }

    /// The retransmission timeout fired: resend what may be lost and probe for lost acknowledgements.
    ///
    /// Data and FIN frames outstanding for a whole timeout are resent **one at a time**, oldest
    /// first, `minRetransmitTimeout` apart (a round, `timerRound`), until none is left or an
    /// acknowledgement makes progress: then the selective acknowledgements it carries show which
    /// of the rest the peer really lacks (`fastRetransmit`), and the ping made here asks for one.
    /// A timeout mostly means late acknowledgements, not lost frames: resending every such frame
    /// at once, at 30 % loss on 20 benchmark seeds, 813 of 1,040 timer resends were of boxes
    /// already stored (586 already read by the peer). Paced, on 100 seeds: writes per data box
    /// 1.075 / 1.266 / 1.643 → 1.062 / 1.253 / 1.612 at 0 / 10 / 30 % loss, goodput unchanged.
    /// Resending only the oldest frame per expiry, as TCP does, stalled benchmark seeds: here an
    /// answer depends on the peer reading this end's boxes, and a peer stuck polling one lost
    /// frame never sends the acknowledgement that would reveal the others. Pings are resent as
    /// `timerClock` allows, all in the expiry.
    ///
    /// Ack-only frames are resent within a range above the frame the peer's reader last said
    /// it waits on (it may be stuck on a lost one there; beyond, later frames carry newer
    /// acknowledgements): one read-ahead, doubling with each expiry without progress. That
    /// bounds the resends however many acknowledgements pile up, and still reaches a peer whose
    /// position we know only late.
    mutating func retransmit(now: StreamTime) {
        if let round = timerRound {
            continueTimerRound(round, now: now)
            return
        }
        let threshold = timer.timeout(jitter: 0).scaled(by: 0.9)
        timerResendBackoff = timer.backoffExponent
        timer.backOff()
        guard let highest = checkpoint.unacked.lazy.filter({ $0.value.kind.elicitsAck }).map(\.key).max() else {
            retransmitAt = nil
            return
        }
        let waitedOn = checkpoint.peerCumulativeAck
        // The peer's position may be stale (it may be stuck reading our lost frames): the range
        // doubles with each expiry without progress, so a stuck peer is reached in the end.
        let ackOnlyLimit = waitedOn &+ UInt64(configuration.readAhead) << UInt64(min(timer.backoffExponent, 20))
        var resent = false
        let pings = unackedPingRange
        var timedOutData: [UInt64] = []
        for index in checkpoint.unacked.keys.sorted() where index <= highest {
            guard let kind = checkpoint.unacked[index]?.kind,
                  kind.elicitsAck || index < ackOnlyLimit,
                  let record = sendRecords[index], record.inFlight == nil, budgetWaiting[index] == nil,
                  now - timerClock(index, kind: kind, record: record, pings: pings, now: now) >= threshold
            else { continue }
            if kind.countsTowardWindow {
                timedOutData.append(index)
                continue
            }
            transmit(index, now: now, for: .timeout)
            resent = true
        }
        // The oldest data or FIN frame now, the others one at a time after it.
        if let index = timedOutData.first {
            transmit(index, now: now, for: .timeout)
            resent = true
            if timedOutData.count > 1 {
                timerRound = TimerResendRound(threshold: threshold, cursor: index &+ 1, nextAt: now + configuration.minRetransmitTimeout)
            }
        }
        // A new frame the peer must acknowledge, in case only its acknowledgements were lost:
        // rewriting a box the peer already read shows it nothing new.
        if resent && checkpoint.mode == .endToEnd { probeRequested = true }
        probeAhead(now: now)
        armRetransmitTimer(now: now)
    }

    /// Resends the next data or FIN frame of a round of timer resends (`timerRound`), if one
    /// is still outstanding for longer than the round's threshold, and paces the next.
    mutating func continueTimerRound(_ round: TimerResendRound, now: StreamTime) {
        timerRound = nil
        let next = checkpoint.unacked.keys.filter { $0 >= round.cursor }.sorted().first { index in
            guard let kind = checkpoint.unacked[index]?.kind, kind.countsTowardWindow,
                  let record = sendRecords[index], record.inFlight == nil, budgetWaiting[index] == nil
            else { return false }
            return now - record.lastSent >= round.threshold
        }
        if let next {
            transmit(next, now: now, for: .timeout)
            timerRound = TimerResendRound(threshold: round.threshold, cursor: next &+ 1, nextAt: now + configuration.minRetransmitTimeout)
        }
        armRetransmitTimer(now: now)
    }

    /// After repeated expiries without progress, reads one box beyond the read-ahead window.
    ///
    /// The peer's acknowledgements may all sit behind a box this end's reader cannot get: an
    /// ack-only frame lost on every write, with a read-ahead too short to see past it. The peer
    /// resends the frame this end waits on only when it reads a new frame saying so, and once
    /// this end's pings reach their bound it makes none: both ends then wait for ever (random
    /// seed 5573, read-ahead 2, 49 % loss: 18,245 writes and no progress in 4 h). Any later
    /// frame of the peer carries its newest acknowledgements, and shows whether the frames
    /// before it held data (if not, the reader skips them). The distance doubles with each
    /// expiry, one read-ahead to 8, and starts again (the peer's frames that answer this end's
    /// pings lie just beyond the window; and on Pigeonhole reaching box *i* steps the index
    /// chain from the nearest known one, a local kpclientd request per box); one probe at a
    /// time, within the budget for reads.
    mutating func probeAhead(now: StreamTime) {
        let expiries = timer.backoffExponent - RetransmitTimer.retriesBeforeBackoff
        guard expiries > 0, aheadProbe == nil, checkpoint.mode == .endToEnd, checkpoint.inbound != nil,
              checkpoint.pending.count < configuration.readAhead, readOperations.count < readLimit(forStarting: true)
        else { return }
        let distance = UInt64(configuration.readAhead) << UInt64((expiries - 1) % 4)
        aheadProbe = startRead(channel: .inbound, index: checkpoint.nextReadIndex + distance, mode: .poll, now: now)
    }

    /// Processes acknowledgement progress: RTT samples, backoff reset, fast retransmission.
    /// - Parameter frames: the frames newly acknowledged, in index order, with their kinds.
    mutating func acknowledged(_ frames: [(index: UInt64, kind: FrameKind)], now: StreamTime) {
        guard !frames.isEmpty else { return }
        var progress = false
        // One round-trip sample per acknowledging frame, from the most recently sent frame it
        // acknowledges: older ones may have waited behind a lost frame at the peer (beyond its
        // read-ahead), which measures the loss, not the path.
        var sample: Duration?
        var oldestSample: Duration?
        var sampledFrames = 0
        var spuriousSample: Duration?
        var spuriousBackoff: Int?
        for (index, kind) in frames {
            if !budgetWaiting.isEmpty { budgetWaiting[index] = nil }
            guard let record = sendRecords.removeValue(at: index) else { continue }
            // Copies first, then the write itself; no array is built per acknowledged frame.
            if !confirmationCopies.isEmpty, let copies = confirmationCopies.removeValue(at: index) {
                for operation in copies.inFlight {
                    writeOperations[operation] = nil
                    actions.append(.cancel(operation))
                }
            }
            if let operation = record.inFlight {
                writeOperations[operation] = nil
                actions.append(.cancel(operation))
            }
            if record.transmissions == 1 {
                sample = min(sample ?? .seconds(Int64.max), now - record.firstSent)
                oldestSample = max(oldestSample ?? .zero, now - record.firstSent)
                sampledFrames += 1
            } else if let backoff = record.backoffBeforeTimerResend, let earlier = record.sentBeforeTimerResend, record.inFlight != nil {
                // Acknowledged while its timer resend is still being written: the
                // acknowledgement is for the copy before it (Eifel's test, without timestamps).
                spuriousSample = min(spuriousSample ?? .seconds(Int64.max), now - earlier)
                spuriousBackoff = min(spuriousBackoff ?? backoff, backoff)
                sendStatistics.spuriousTimeouts += 1
            }
            // Only data reaching the peer is progress: acknowledged pings and acknowledgements
            // must not reset the backoff while a data frame stays stuck.
            if kind.countsTowardWindow { progress = true }
        }
        for (index, _) in frames where !verifyReads.isEmpty {
            if let operation = verifyReads.removeValue(forKey: index) {
                readOperations[operation] = nil
                actions.append(.cancel(operation))
            }
        }
        if let spuriousBackoff, let spuriousSample {
            timer.spuriousTimeout(originalRTT: min(sample ?? spuriousSample, spuriousSample), restoring: spuriousBackoff)
        } else if let sample {
            timer.addSample(sample, batchSpread: sampledFrames >= Self.minFramesForBatchSpread ? (oldestSample ?? sample) - sample : .zero)
        }
        if progress {
            timer.resetBackoff()
            timerRound = nil
        }
        armRetransmitTimer(now: now)
    }

    /// Whether a stream with `framesOutstanding` data frames unacknowledged counts as quiet: at
    /// most two (an app write may span two frames), with ``StreamConfiguration/quietFrameCopies``.
    func isQuiet(framesOutstanding: Int) -> Bool {
        configuration.quietFrameCopies > 0 && framesOutstanding <= Self.maxFramesForConfirmation
    }

    /// Whether data frame `index`, whose first write was just issued, also gets a
    /// **confirmation copy** at once: when it is the newest frame awaiting an answer on a quiet
    /// stream. A write's success does not prove the box was stored, and on a quiet stream no
    /// later frame would reveal the loss through a selective acknowledgement: only the
    /// retransmission timer, several round trips later. Written together, the box also lands as
    /// early as the fastest of the writes. In bulk transfer there is always more than two frames
    /// outstanding, so this costs nothing there; a low-rate stream pays one write per frame.
    func needsConfirmationCopy(_ index: UInt64) -> Bool {
        // The cheap test first: in bulk transfer it fails, and no frame or record is looked up.
        guard checkpoint.mode == .endToEnd, isQuiet(framesOutstanding: checkpoint.unackedWindowFrames),
              let frame = checkpoint.unacked[index], frame.kind.countsTowardWindow,
              let record = sendRecords[index], record.transmissions == 1, record.inFlight != nil
        else { return false }
        return !checkpoint.unacked.contains { $0.key > index && $0.value.kind.elicitsAck }
    }

    /// Writes a retained frame's exact ciphertext once more, alongside its first write (see
    /// `needsConfirmationCopy`), in the room of a read ahead if the budget has none.
    mutating func transmitConfirmationCopy(_ index: UInt64, now: StreamTime) {
        guard canStartWrite || (writeOperations.count < writeBudget && yieldFarthestRead(keeping: checkpoint.nextReadIndex)),
              let frame = checkpoint.unacked[index], sendRecords[index] != nil
        else { return }
        sendStatistics.confirmationCopies += 1
        let operation = newOperation()
        writeOperations[operation] = WriteOperation(index: index, started: now)
        actions.append(.write(operation, index: index, bytes: frame.ciphertext))
        if confirmationCopies.update(at: index, { $0.inFlight.append(operation) }) == nil {
            confirmationCopies[index] = ConfirmationCopies(inFlight: [operation])
        }
    }

    /// Writes over which ``writeFailureShare`` averages.
    static let writeFailureWindow = 32.0
    /// The failure share from which a hole is treated as a likely loss (the shortest wait).
    static let lossyWriteFailureShare = 0.07
    /// The failure share from which the window is halved (``sendWindowInForce``).
    static let windowHalvingWriteFailureShare = 0.1

    /// Whether at least ``windowHalvingWriteFailureShare`` of this end's recent writes failed:
    /// then the window is halved (``sendWindowInForce``), and acknowledgements are asked for
    /// and sent half as often (`needsAckRequest`, the fallback ack timer in `receive`). At 30 %
    /// loss, 100 benchmark seeds, the acknowledgement pacing with `supersedingAcknowledgement`
    /// took ack-only boxes per data box from .130 to .096 (target .1), the writer's writes from
    /// 1.612 to 1.599 and the receiver's reads from 1.545 to 1.576 per data box; goodput fell
    /// from .30 to .26 of the bound (no target there), and nothing changed at 10 % loss, where
    /// about 5 % of writes fail.
    var isOnALossyPath: Bool { writeFailureShare >= Self.windowHalvingWriteFailureShare }

    /// The window that bounds frame creation: ``StreamConfiguration/sendWindow``, halved while
    /// ``writeFailureShare`` is at least ``windowHalvingWriteFailureShare``, but never below the
    /// operation budget (``StreamConfiguration/maxOperationsInFlight``).
    ///
    /// On a path that loses that much, each hole holds every frame behind it unacknowledged
    /// while it is recovered, and more frames in flight only add frames overtaken (resent on
    /// selective acknowledgements) and reads; the budget goes to recovery instead. At 30 % loss
    /// (about 15 % of writes failing), 40 benchmark seeds, window 96 halved against window 96
    /// kept: writes per data box 1.79 → 1.64, goodput .24 → .32 of the budget's bound. Frames
    /// already made stay as they are; the ACK-NOW cadence (`needsAckRequest`) keeps the
    /// configured window's. A window within the budget is left whole: there every frame's
    /// write has a slot anyway, and halving it only adds round trips (the Go original's
    /// window of 7 halved, at 40 % loss: 2 of 5 benchmark seeds unfinished after 4 h).
    var sendWindowInForce: Int {
        let window = configuration.sendWindow
        guard isOnALossyPath else { return window }
        return min(window, max(window / 2, configuration.maxOperationsInFlight))
    }

    /// How many smoothed round trips a frame a peer's selective acknowledgement skips is left
    /// before it is resent: 9/8 on a path where at least ``lossyWriteFailureShare`` of the
    /// writes fail, rising linearly to 2 as the share of failed writes falls to none (1.375 at
    /// 5 %, the share at 10 % loss in the benchmark, where half the lost writes fail).
    ///
    /// A box lands half a write's latency after the write starts and the peer's waiting read
    /// returns a whole latency after that, so on a loss-free path about a fifth of the frames
    /// are overtaken by a later one by more than 9/8·SRTT, and each such resend is needless (at
    /// no loss they were nearly all of the writer's extra writes: 20 benchmark seeds, 3,133
    /// SACK resends per 14,000 frames; 417 at 2·SRTT). Where writes fail, a hole is more likely
    /// a box lost without a word, and waiting longer holds the window: goodput at 10 % loss fell
    /// from .59 to .42 with 2·SRTT always. Failed writes are the loss signal this end sees.
    /// At 10 % loss three resends in four on selective acknowledgements were still needless
    /// with the shortest wait from 2 % failed writes on (20 seeds: 2,631 of 3,447); from 7 %
    /// (with the benchmark's window 6·C), writes per data box fell from 1.36 to 1.26 and
    /// goodput rose from .58 to .60 of the bound.
    var sackResendAfter: Double {
        9.0 / 8.0 + 7.0 / 8.0 * max(0, 1 - writeFailureShare / Self.lossyWriteFailureShare)
    }

    /// Resends frames a peer frame shows to be missing: the one its reader waits on (its
    /// cumulative acknowledgement) and those below its highest selective acknowledgement.
    ///
    /// The frame the peer waits on is resent even if it is an ack-only frame, which the
    /// retransmission timer alone would not resend: otherwise a peer stuck on a lost
    /// ack-only box would never read the acknowledgements behind it.
    mutating func fastRetransmit(after frame: Frame, now: StreamTime) {
        let sackTop = frame.sackRanges.last?.end ?? 0
        if sackTop > 0 {
            let threshold = timer.smoothedRTT.map { $0.scaled(by: sackResendAfter) } ?? timer.baseTimeout
            for index in checkpoint.unacked.keys.filter({ $0 < sackTop }).sorted() {
                guard let record = sendRecords[index], record.inFlight == nil, now - record.lastSent >= threshold else { continue }
                transmit(index, now: now, for: .sack)
            }
        }
        // The peer says it waits on this box: each of its frames saying so may trigger a resend
        // (rewriting a box is idempotent; under loss this is the fastest recovery).
        // Not more often than once per two round trips for an ack-only frame (the peer's claim
        // may be stale: its frames carry the acknowledgement they had when made, and wait for the
        // budget; the peer reads this end's boxes in order and may simply be behind; and a later
        // ack-only frame lets the peer skip a lost one anyway). A frame the peer needs
        // goes after a quarter round trip: the round trip grows while the peer waits (its frames
        // beyond its read-ahead are acknowledged late), so a whole one would slow the recovery
        // that shortens it.
        // SRTT at most the largest retransmission timeout: an end that only acknowledges samples its
        // round trip on ack-only frames, and while the peer's reader is stuck (on this very
        // frame) those samples grow without bound (542 s on random seed 2008, whose peer then
        // pinged for hours).
        if frame.flags.contains(.ping), sendRecords[frame.cumulativeAck] != nil {
            frameThePeerProbesFor = (frame.cumulativeAck, 0)
        } else if let probed = frameThePeerProbesFor, probed.index != frame.cumulativeAck {
            frameThePeerProbesFor = nil
        }
        resendFrameThePeerWaitsOn(supersedingAcknowledgement(for: frame.cumulativeAck) ?? frame.cumulativeAck, now: now)
    }

    /// For an ack-only frame `index` a peer waits on: this end's newest frame, if it is an
    /// unacknowledged ack-only frame too and within one read-ahead of `index` (where the peer's
    /// reader, reading ahead as this end does, keeps a read), which carries every
    /// acknowledgement `index` held and more, and lets the peer's reader skip `index` (it
    /// carries no data). A peer that waits on an ack-only frame has lost it or is behind;
    /// either way the newest serves it better, for the same one write. At 30 % loss (with the
    /// lossy-path acknowledgement pacing of `needsAckRequest` and `receive`), 100 benchmark
    /// seeds: ack-only boxes per data box .109 → .096. Without the read-ahead bound, 3 of 30,000
    /// random seeds stalled (13854, 18182 and 24255, all with read-ahead 2, 31–43 % loss): a
    /// reader that does not look that far ahead never reads the newest.
    func supersedingAcknowledgement(for index: UInt64) -> UInt64? {
        let newest = checkpoint.nextWriteIndex &- 1
        // The counts first: a frame lookup copies the frame out (its ciphertext retained).
        guard newest > index, newest - index < UInt64(configuration.readAhead), checkpoint.unacked.count(of: .ackOnly) > 1,
              checkpoint.unacked[index]?.kind == .ackOnly, checkpoint.unacked[newest]?.kind == .ackOnly
        else { return nil }
        return newest
    }

    /// Writes retained frame `index` again for a peer that waits on it, unless it is in flight
    /// or was last sent less than a quarter round trip ago (two for an ack-only frame; at least
    /// `minRetransmitTimeout`; see `fastRetransmit`); returns whether it did.
    @discardableResult
    mutating func resendFrameThePeerWaitsOn(_ index: UInt64, now: StreamTime) -> Bool {
        guard let record = sendRecords[index], record.inFlight == nil, let kind = checkpoint.unacked[index]?.kind else { return false }
        let srtt = min(timer.smoothedRTT ?? timer.baseTimeout, configuration.maxRetransmitTimeout)
        guard now - record.lastSent >= max(configuration.minRetransmitTimeout, kind == .ackOnly ? srtt * 2 : srtt / 4) else { return false }
        transmit(index, now: now, for: .waitedOn)
        return true
    }

    /// On a stream closed both ways, rewrites the frame the peer's latest ping said its reader
    /// waits on (``frameThePeerProbesFor``) and this end's newest frame, if unacknowledged, each
    /// as ``resendFrameThePeerWaitsOn(_:now:)`` allows: called on each of the lingering end's polls.
    ///
    /// Otherwise such a frame (typically this end's last acknowledgements, ack-only frames) is
    /// rewritten only when a new peer frame is read, and the peer's probes back off (older pings
    /// to one rewrite per four timeouts) while its view of this end is stale: with each copy of
    /// the acknowledgements lost, the linger could end between two of its probes, leaving the
    /// peer probing for the rest of its life (random seed 783 at 46 % loss, window 9, read-ahead
    /// 4, with an earlier version of the lossy-path window: the dialer's last four ack-only
    /// frames lost on both writes each, the listener's next ping not read in the 10-minute
    /// linger). The newest frame carries the newest acknowledgements and lets the peer's reader
    /// skip the lost ones before it; the frame it waits on moves it on if the newest is beyond
    /// its read-ahead. A ping is made only when the peer's timer expires, so one that names a
    /// frame this end has sent is evidence that the peer lacks it; a peer that closed cleanly
    /// sends none. But the peer may also have got the frame after its ping and gone silent,
    /// closed, which this end cannot tell from its pings being lost: so each ping buys at most
    /// ``maxLingerRewrites`` rewrites (with every poll rewriting until the linger ended, random
    /// seed 5 at 10 % loss made 79 operations after closing instead of 43).
    mutating func rewriteFramesThePeerProbesFor(now: StreamTime) {
        guard isClosedBothWays, let probed = frameThePeerProbesFor, probed.rewrites < Self.maxLingerRewrites else { return }
        let newest = checkpoint.nextWriteIndex &- 1
        let rewroteProbed = resendFrameThePeerWaitsOn(probed.index, now: now)
        let rewroteNewest = newest > probed.index && resendFrameThePeerWaitsOn(newest, now: now)
        if rewroteProbed || rewroteNewest { frameThePeerProbesFor?.rewrites += 1 }
    }

    /// How many times a lingering end rewrites the frames one peer ping asked for.
    static let maxLingerRewrites = 4
}
