// Reading: the read window, idle polling, and what received frames do.

extension StreamMachine {
    // MARK: - Internals: reading

    mutating func startRead(channel: StreamChannel, index: UInt64, mode: BoxReadMode, now: StreamTime) -> OperationID {
        let operation = newOperation()
        readOperations[operation] = ReadRecord(channel: channel, index: index, mode: mode, started: now)
        actions.append(.read(operation, channel: channel, index: index, mode: mode))
        return operation
    }

    mutating func cancelRead(_ operation: OperationID) {
        readOperations[operation] = nil
        actions.append(.cancel(operation))
    }

    /// Whether the stream is active: it expects frames soon, so it keeps blocking reads open.
    ///
    /// A stream stays active for ``StreamConfiguration/idleAfter`` after its last activity, and
    /// at least twice the current retransmission timeout, so that a peer retransmitting with
    /// backoff does not find it polling slowly.
    func isActive(now: StreamTime) -> Bool {
        now.nanoseconds < lastActivity.nanoseconds &+ timer.activeWindowNanoseconds || !checkpoint.isWriteSettled || ackDeadline != nil
            || checkpoint.unacked.elicitingCount > 0
    }

    var activeWindow: Duration { timer.activeWindow }

    /// Whether the stream is closed both ways and has lingered long enough to answer a peer
    /// whose last acknowledgement was lost: then it reads nothing more.
    func hasFinishedLingering(now: StreamTime) -> Bool {
        isClosedBothWays && now >= lastActivity + configuration.closeLinger
    }

    /// Whether the peer closed its direction and every byte up to its FIN arrived, and this end
    /// closed its own (or has none).
    var isClosedBothWays: Bool { isInboundFinished && (checkpoint.outbound == nil || isClosed) }

    /// The longest interval between idle polls. A stream closed both ways polls no slower than
    /// the peer retransmits at most (its largest retransmission timeout) while it lingers: the
    /// peer may still wait for its last acknowledgement, and each of its probes is a box this
    /// end must read before the linger ends.
    var longestPollInterval: Duration {
        isClosedBothWays ? min(configuration.maxIdlePollInterval, configuration.maxRetransmitTimeout) : configuration.maxIdlePollInterval
    }

    /// Whether the peer closed its direction and every byte up to its FIN arrived.
    var isInboundFinished: Bool {
        checkpoint.peerFinOffset.map { checkpoint.deliveredBytes == $0 } ?? false
    }

    /// Keeps the read window full while active; polls the next index with backoff while idle.
    mutating func scheduleReads(now: StreamTime) {
        readWakeAt = nil
        guard checkpoint.inbound != nil else { return }
        let first = checkpoint.nextReadIndex
        let pendingEmpty = checkpoint.pending.isEmpty
        // Reads below the reader's position, or of frames already received, are stale.
        if inboundReads.lowestIndexBound < first || !pendingEmpty {
            let pending = checkpoint.pending
            let stale = inboundReads.removeAll { index, _ in index < first || (!pendingEmpty && pending[index] != nil) }
            for (_, operation) in stale { cancelRead(operation) }
        }
        if !eagerReads.isEmpty, let eagerIndex = eagerReadsIndex, eagerIndex < first {
            for operation in eagerReads { cancelRead(operation) }
            eagerReads.removeAll()
        }
        if first != perIndexStateFrom {
            // Only when the reader moved on: these are rebuilt, not edited in place.
            perIndexStateFrom = first
            if !retryReadAt.isEmpty { retryReadAt = retryReadAt.filter { $0.key >= first } }
            if !decryptFailures.isEmpty { decryptFailures = decryptFailures.filter { $0.key >= first } }
            if !readFailures.isEmpty { readFailures = readFailures.filter { $0.key >= first } }
        }

        let active = isActive(now: now)
        if active != wasActive {
            wasActive = active
            if active {
                pollInterval = configuration.minIdlePollInterval
            } else {
                // Going idle: stop the blocking reads, poll the next index instead.
                for (_, operation) in inboundReads.entries where readOperations[operation]?.mode == .wait { cancelRead(operation) }
                for operation in eagerReads { cancelRead(operation) }
                eagerReads.removeAll()
                inboundReads.removeAll { readOperations[$1] == nil }
                nextPollAt = now
            }
        }
        // Bounded buffering: stop reading while the app leaves a full buffer unread; its next
        // read resumes the stream.
        guard checkpoint.readableCount < configuration.maxReadBuffer else { return }
        func wake(at time: StreamTime) {
            if readWakeAt.map({ time < $0 }) ?? true { readWakeAt = time }
        }
        if active {
            let depth = configuration.readAhead
            // Reads take only the room writes do not want, but always one: the read the
            // stream is blocked on. Reads ahead give way to writes, highest index first.
            let keep = readLimit(forStarting: false)
            if readOperations.count > keep {
                for index in inboundReads.keys.sorted(by: >) where index != first && readOperations.count > keep {
                    if let operation = inboundReads.removeValue(at: index) { cancelRead(operation) }
                }
                while readOperations.count > keep, let operation = eagerReads.popLast() { cancelRead(operation) }
            }
            let limit = readLimit(forStarting: true)
            // With `depth` reads in flight every index of the window has one: none lies below
            // `first` (cleared above) or beyond the window, which only moves forward.
            let unread = inboundReads.count < depth ? UInt64(depth) : 0
            for index in first..<(first + unread) {
                guard readOperations.count < limit else { break }
                guard pendingEmpty || checkpoint.pending[index] == nil, inboundReads[index] == nil else { continue }
                if !retryReadAt.isEmpty {
                    if let retry = retryReadAt[index], retry > now {
                        wake(at: retry)
                        continue
                    }
                    retryReadAt[index] = nil
                }
                inboundReads[index] = startRead(channel: .inbound, index: index, mode: .wait, now: now)
            }
            scheduleEagerReads(first: first, now: now)
            let idleAt = StreamTime(nanoseconds: lastActivity.nanoseconds &+ timer.activeWindowNanoseconds)
            if idleAt > now { wake(at: idleAt) }
        } else if inboundReads.isEmpty, !hasFinishedLingering(now: now) {
            if now >= nextPollAt {
                inboundReads[first] = startRead(channel: .inbound, index: first, mode: .poll, now: now)
                rewriteFramesThePeerProbesFor(now: now)
            } else {
                wake(at: nextPollAt)
            }
        }
    }

    /// Follows whether the peer writes at a low rate: a data frame flagged ``Frame/Flags/quiet``
    /// says so, a newer data frame without the flag says it is busy again, and frames without
    /// data (acknowledgements, pings) leave it quiet and move the box to read eagerly past them.
    mutating func noteQuietness(of frame: Frame, carriesData: Bool) {
        let newer = quietNextIndex.map { frame.index >= $0 } ?? true
        guard newer else { return }
        if frame.flags.contains(.quiet) || (quietNextIndex != nil && !carriesData && !frame.flags.contains(.fin)) {
            quietNextIndex = frame.index + 1
        } else {
            quietNextIndex = nil
        }
    }

    /// Reads the box the reader waits on with extra reads when the peer's newest frame was
    /// flagged ``Frame/Flags/quiet``: its next frame comes at an unknown time, and the first of
    /// several reads to return it delivers it (the least of several round trips). Issued once
    /// per box, within the budget for reads; none after the peer's FIN.
    mutating func scheduleEagerReads(first: UInt64, now: StreamTime) {
        let extra = configuration.parallelReadsAfterQuietFrame - 1
        guard extra > 0, quietNextIndex == first, eagerReadsIndex != first, checkpoint.peerFinOffset == nil else { return }
        eagerReadsIndex = first
        for _ in 0..<extra {
            guard readOperations.count < readLimit(forStarting: true) || yieldFarthestRead(keeping: first) else { break }
            eagerReads.append(startRead(channel: .inbound, index: first, mode: .wait, now: now))
        }
    }

    /// Cancels the read-ahead read of the highest index other than `kept`, to make room in the
    /// budget for a read or write that matters more now; returns whether there was one.
    mutating func yieldFarthestRead(keeping kept: UInt64) -> Bool {
        guard let farthest = inboundReads.keys.filter({ $0 != kept }).max(),
              let operation = inboundReads.removeValue(at: farthest)
        else { return false }
        cancelRead(operation)
        return true
    }

    mutating func inboundReadCompleted(_ record: ReadRecord, operation: OperationID, result: Result<[UInt8]?, BoxTransportError>, now: StreamTime) {
        let index = record.index
        if inboundReads[index] == operation { inboundReads[index] = nil }
        if operation == aheadProbe {
            // A probe beyond the read window: only a frame it finds counts.
            aheadProbe = nil
            guard case .success(let bytes?) = result else { return }
            openAndReceive(bytes, index: index, now: now)
            return
        }
        if let eager = eagerReads.firstIndex(of: operation) {
            // An extra read of a quiet peer's next box: only a frame it finds counts (the
            // box's own read keeps the retry policy).
            eagerReads.remove(at: eager)
            guard case .success(let bytes?) = result else { return }
            openAndReceive(bytes, index: index, now: now)
            return
        }
        switch result {
        case .failure(let error) where !error.isTransient:
            fail(StreamError(.transport, "reading box \(index) failed for good: \(error.message)"))
        case .failure:
            // A failed read says nothing about round trips: retry at once, then back off while
            // this box keeps failing. Any read that returns a frame resets every backoff.
            let failures = readFailures[index, default: 0] + 1
            readFailures[index] = failures
            if failures > 1 {
                retryReadAt[index] = now + min(configuration.minRetransmitTimeout * (1 << min(failures - 2, 16)), configuration.maxReadRetryInterval)
            }
        case .success(nil):
            if record.mode == .poll {
                nextPollAt = now + pollInterval.scaled(by: 1 + 0.25 * random.unit())
                pollInterval = min(pollInterval * 2, longestPollInterval)
            } else {
                // The transport stopped waiting; ask again shortly (not in a tight loop).
                retryReadAt[index] = now + configuration.minRetransmitTimeout
            }
        case .success(let bytes?):
            openAndReceive(bytes, index: index, now: now)
        }
    }

    /// Opens the box read at `index` and processes its frame, unless it was already received.
    mutating func openAndReceive(_ bytes: [UInt8], index: UInt64, now: StreamTime) {
        guard index >= checkpoint.nextReadIndex, checkpoint.pending[index] == nil, let sealer = inboundSealer else { return }
        // Opened into the reused buffer, taken out while in use (so that it stays unique).
        var plaintext = plaintextScratch
        plaintextScratch = []
        defer { plaintextScratch = plaintext }
        let opened: (frame: Frame, data: Range<Int>)
        do {
            opened = try sealer.open(bytes, index: index, into: &plaintext)
        } catch where error.code == .frameDecrypt {
            let failures = decryptFailures[index, default: 0] + 1
            decryptFailures[index] = failures
            if failures >= configuration.maxDecryptFailures {
                fail(StreamError(.frameDecrypt, "box \(index) failed to decrypt \(failures) times: \(error.message)"))
            } else {
                retryReadAt[index] = now + timer.baseTimeout
            }
            return
        } catch {
            fail(error)
            return
        }
        receive(opened.frame, data: plaintext[opened.data], now: now)
    }

    /// Processes a received frame with `data` in place of its ``Frame/data``.
    mutating func receive(_ frame: Frame, data: ArraySlice<UInt8>, now: StreamTime) {
        let elicits = FrameKind(received: frame, dataCount: data.count, peerFinKnown: checkpoint.peerFinOffset != nil).elicitsAck
        if !readFailures.isEmpty { readFailures.removeAll() }
        let newlyAcknowledged: [(index: UInt64, kind: FrameKind)]
        do {
            newlyAcknowledged = try recordReceived(frame, data: data)
        } catch {
            fail(error)
            return
        }
        if !decryptFailures.isEmpty { decryptFailures[frame.index] = nil }
        lastActivity = now
        peerHeardAt = now
        noteQuietness(of: frame, carriesData: !data.isEmpty)
        if timer.awaitsFirstAnswer, timer.peerAnswered() {
            // The peer has joined: what it has not acknowledged is resent within the usual cap.
            armRetransmitTimer(now: now)
        }
        acknowledged(newlyAcknowledged, now: now)
        fastRetransmit(after: frame, now: now)
        if elicits, checkpoint.mode == .endToEnd, checkpoint.outbound != nil {
            elicitingSinceAck += 1
            // The sender asks when it needs an acknowledgement (`ackNow`); otherwise wait, and
            // coalesce more acknowledgements on slow paths: each one costs a box write.
            let immediate = elicitingSinceAck >= max(2, configuration.readAhead / 2)
            // Asked: after `ackDelay`, so that frames read at about the same time, or a frame
            // of this end's own, carry one acknowledgement.
            // Not asked: the delayed-ack timer is the fallback for a lost `ackNow` frame: a round
            // trip, but at most the initial timeout (an end that only acknowledges measures its
            // round trip on ack-only frames, whose answer waits for the peer's next frame).
            let rtt = timer.smoothedRTT ?? configuration.initialRetransmitTimeout
            // On a lossy path the fallback waits twice as long (see `isOnALossyPath`).
            let fallback = max(configuration.ackDelay, min(rtt, configuration.initialRetransmitTimeout))
            let delay = frame.flags.contains(.ackNow) ? configuration.ackDelay : (isOnALossyPath ? fallback * 2 : fallback)
            let due = immediate ? now : now + delay
            ackDeadline = min(ackDeadline ?? due, due)
        }
    }

    mutating func verifyCompleted(_ index: UInt64, operation: OperationID, result: Result<[UInt8]?, BoxTransportError>, now: StreamTime) {
        if verifyReads[index] == operation { verifyReads[index] = nil }
        guard case .success(let bytes?) = result, let frame = checkpoint.unacked[index] else { return }
        guard bytes == frame.ciphertext else {
            fail(StreamError(.transport, "box \(index) holds different data than this stream wrote"))
            return
        }
        recordOrFail(.verified(index: index))
        acknowledged([(index, frame.kind)], now: now)
    }
}
