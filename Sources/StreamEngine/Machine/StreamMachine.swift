/// Identifies one transport operation the machine asked for.
public struct OperationID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw, per-machine unique number.
    public let rawValue: UInt64
    public static func < (lhs: OperationID, rhs: OperationID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "op\(rawValue)" }
}

/// Which of a stream's two box channels an operation uses.
public enum StreamChannel: Sendable, Hashable {
    /// The channel this end writes (read only to verify multicast frames).
    case outbound
    /// The channel the peer writes and this end reads.
    case inbound
}

/// A transport operation for the embedder to perform, then report with
/// ``StreamMachine/writeCompleted(_:result:now:)`` or ``StreamMachine/readCompleted(_:result:now:)``.
public enum StreamAction: Sendable, Hashable {
    /// Write `bytes` to box `index` of the outbound channel.
    case write(OperationID, index: UInt64, bytes: [UInt8])
    /// Read box `index` of `channel`.
    case read(OperationID, channel: StreamChannel, index: UInt64, mode: BoxReadMode)
    /// Cancel an operation started earlier; its completion, if any, is ignored.
    case cancel(OperationID)
}

/// How the embedder confirms that journal records are durable.
public enum StreamDurability: Sendable, Hashable {
    /// No persistence: every change counts as durable at once and no journal is kept.
    case automatic
    /// The embedder takes the journal with ``StreamMachine/takeJournal()``, persists it, and
    /// confirms with ``StreamMachine/markDurable(through:now:)``. Until then the machine holds
    /// back the first send of new frames (so acknowledgements to the peer and data it carries
    /// are never ahead of the disk), and the embedder must hold back telling the app that its
    /// bytes were accepted.
    case explicit
}

/// The sans-I/O state machine of one end of a stream.
///
/// It never touches a clock, a socket or a file. Inputs are app calls, transport completions
/// and timer ticks, each with the current time; outputs are ``StreamAction``s, journal records
/// (``CheckpointRecord``) and the next deadline. See `docs/PROTOCOL.md` for the protocol and
/// `docs/ARCHITECTURE.md` for the invariants.
public struct StreamMachine: Sendable {
    /// The durable state.
    public private(set) var checkpoint: StreamCheckpoint
    /// The configuration.
    public let configuration: StreamConfiguration
    /// The durability mode.
    public let durability: StreamDurability

    let outboundSealer: FrameSealer?
    let inboundSealer: FrameSealer?
    var random: SplitMix64
    var timer: RetransmitTimer

    // Journal and durability gating.
    var journal: [CheckpointRecord] = []
    /// The highest journal sequence confirmed durable.
    public private(set) var durableSequence: UInt64
    var gatedWrites: [(sequence: UInt64, index: UInt64)] = []

    var actions: [StreamAction] = []
    /// The batch ``takeActions()`` returned last: once the embedder has dropped it, its storage
    /// takes the next batch, so taking actions allocates nothing.
    var takenActions: [StreamAction] = []
    var nextOperation: UInt64 = 1

    // Sending.
    struct SendRecord {
        var firstSent: StreamTime
        var lastSent: StreamTime
        var transmissions: Int
        var inFlight: OperationID?
        /// Transient write failures in a row; the first is resent at once, later ones wait for
        /// the retransmission timer.
        var failuresInRow = 0
        /// If the latest send was a timer resend: the backoff before that expiry, restored if
        /// the resend proves needless, and when the copy before it was sent.
        var backoffBeforeTimerResend: Int?
        var sentBeforeTimerResend: StreamTime?
    }
    /// A frame's confirmation copies (see `needsConfirmationCopy`), apart from its
    /// ``SendRecord`` so that the record holds no reference: it is read and changed on every
    /// send and completion, and copies are rare (quiet streams only).
    struct ConfirmationCopies {
        /// The copies' writes in flight. Copies go out with the first write, so they do not
        /// count as transmissions: they leave its round-trip sample unambiguous.
        var inFlight: [OperationID] = []
        /// Copies that failed and were written again (each copy once at most).
        var rewritten = 0
    }
    struct WriteOperation {
        var index: UInt64
        var started: StreamTime
    }
    /// By frame index (within the span of retained frames).
    var sendRecords = IndexSlots<SendRecord>(span: 1)
    /// By frame index, for frames with a send record that got confirmation copies; dropped
    /// with the record.
    var confirmationCopies = IndexSlots<ConfirmationCopies>(span: 1)
    var writeOperations = OperationSlots<WriteOperation>(span: 1)
    /// Frames due for a (re)send that wait for room in the operation budget (sent lowest index
    /// first), each with the reason it was first due for.
    var budgetWaiting: [UInt64: SendReason] = [:]
    /// The frame of this end's, already sent, that the peer's latest ping named as the one its
    /// reader waits on (its cumulative acknowledgement), until a peer frame names another, and
    /// how many times a lingering end rewrote it since (not persisted; see
    /// `rewriteFramesThePeerProbesFor`).
    var frameThePeerProbesFor: (index: UInt64, rewrites: Int)?
    /// The share of this end's recent writes that failed transiently (an exponential average
    /// over about ``writeFailureWindow`` writes; confirmation copies excluded; not persisted):
    /// how patient the selective-acknowledgement resend is (`sackResendAfter`).
    var writeFailureShare = 0.0
    var retransmitAt: StreamTime?
    /// A round of timer resends under way: data and FIN frames outstanding for longer than
    /// `threshold` are resent one at a time, `minRetransmitTimeout` apart, from `cursor` up,
    /// until none is left or an acknowledgement makes progress (see `retransmit`).
    struct TimerResendRound {
        var threshold: Duration
        /// The lowest index the round may resend next.
        var cursor: UInt64
        /// When it resends the next.
        var nextAt: StreamTime
    }
    var timerRound: TimerResendRound?
    /// When this end last read a frame of the peer's (not persisted).
    var peerHeardAt: StreamTime?
    /// The backoff before the latest expiry of the retransmission timer (for its resends).
    var timerResendBackoff = 0
    var probeRequested = false
    /// A bound on unacknowledged pings (at most one is made per retransmission timeout).
    static let maxOutstandingProbes = 64
    /// How often a ping's own wait before a timer resend may double (see `timerClock`): at
    /// most 4 timeouts, 4 minutes at the default `maxRetransmitTimeout`.
    static let maxPingBackoffDoublings = 2
    static let maxRetainedAckOnlyFrames = 1024
    /// The fewest frames with round-trip samples one acknowledgement must cover for its spread
    /// to count as a batch's (see `RetransmitTimer.batchSpread`): on a quiet stream, one
    /// acknowledgement covering two frames sent seconds apart measures the app's pace, and
    /// counting it slowed loss recovery (low-rate p99 6.9 L → 9.2 L).
    static let minFramesForBatchSpread = 4
    /// The most data frames outstanding for which a stream still counts as quiet, so that the
    /// newest one gets confirmation copies and the QUIET flag (see `isQuiet`).
    static let maxFramesForConfirmation = 2

    // Acknowledging.
    var ackDeadline: StreamTime?
    var elicitingSinceAck = 0
    /// The index of the latest frame this end created with ``Frame/Flags/ackNow``.
    var lastAckRequest: UInt64?

    // Reading.
    struct ReadRecord {
        var channel: StreamChannel
        var index: UInt64
        var mode: BoxReadMode
        var started: StreamTime
    }
    var readOperations = OperationSlots<ReadRecord>(span: 1)
    /// The buffer inbound boxes are opened into, reused from box to box.
    var plaintextScratch: [UInt8] = []
    /// Why this stream's box writes were made, since it was created or restored.
    public internal(set) var sendStatistics = StreamSendStatistics()
    /// The inbound read in flight for each index (all within one read-ahead of each other).
    var inboundReads = IndexSlots<OperationID>(span: 1)
    var verifyReads: [UInt64: OperationID] = [:]
    /// The read of a box beyond the read-ahead window while this end's frames go unanswered
    /// (see `probeAhead`), if one is in flight.
    var aheadProbe: OperationID?
    /// The peer's box after its newest frame flagged ``Frame/Flags/quiet``, while no newer
    /// frame of the peer's says it is busy again: read with several reads at once.
    var quietNextIndex: UInt64?
    /// The extra reads of the box the reader waits on after a quiet frame (see
    /// `scheduleEagerReads`), and the index they were issued for (once per box).
    var eagerReads: [OperationID] = []
    var eagerReadsIndex: UInt64?
    var retryReadAt: [UInt64: StreamTime] = [:]
    var decryptFailures: [UInt64: Int] = [:]
    var readFailures: [UInt64: Int] = [:]
    /// The read index below which the per-index read state above was last cleared.
    var perIndexStateFrom: UInt64 = 0
    var lastActivity: StreamTime
    var wasActive = true
    var pollInterval: Duration
    var nextPollAt: StreamTime
    /// When the read scheduler next has something to do (a retry, a poll, or going idle).
    var readWakeAt: StreamTime?

    /// The error that stopped the stream, if any.
    public private(set) var failure: StreamError?
    /// Whether ``halt()`` was called.
    public private(set) var isHalted = false

    // MARK: - Creating and restoring

    /// Creates one end of a new stream.
    ///
    /// - Parameters:
    ///   - address: the stream's address.
    ///   - role: ``StreamRole/listener`` for the end that created the address.
    ///   - boxSize: the transport's exact box size (``BoxChannel/payloadSize``).
    ///   - randomSeed: seeds timer jitter; pass a fixed value for reproducible simulations.
    public init(
        address: StreamAddress, role: StreamRole, boxSize: Int, configuration: StreamConfiguration = .init(),
        durability: StreamDurability = .automatic, now: StreamTime, randomSeed: UInt64
    ) throws(StreamError) {
        try Self.checkBoxSize(boxSize)
        let keys = try address.keys(as: role)
        let checkpoint = StreamCheckpoint(mode: address.mode, role: role, boxSize: boxSize, outbound: keys.outbound, inbound: keys.inbound)
        try self.init(checkpoint: checkpoint, configuration: configuration, durability: durability, now: now, randomSeed: randomSeed)
        advance(now: now)
    }

    /// Restores one end of a stream from a checkpoint and the journal records made after it.
    ///
    /// Every frame that was created but not acknowledged is sent again, byte-identical.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/geometryChanged`` if `boxSize` differs from the
    ///   checkpoint's, ``StreamError/Code-swift.struct/invalidCheckpoint`` if records are missing.
    public init(
        restoring checkpoint: StreamCheckpoint, journal records: [CheckpointRecord] = [], boxSize: Int,
        configuration: StreamConfiguration = .init(), durability: StreamDurability = .automatic,
        now: StreamTime, randomSeed: UInt64
    ) throws(StreamError) {
        guard boxSize == checkpoint.boxSize else {
            throw StreamError(.geometryChanged, "the transport's box size is \(boxSize) bytes but the stream was created with \(checkpoint.boxSize)")
        }
        var restored = checkpoint
        try restored.replay(records)
        try self.init(checkpoint: restored, configuration: configuration, durability: durability, now: now, randomSeed: randomSeed)
        // A restored stream starts idle (it polls) unless it has something in flight, which
        // keeps it active anyway: a daemon restoring thousands of quiet streams must not park
        // a read-ahead window of blocking reads for each of them.
        lastActivity = now + (.zero - activeWindow) + .nanoseconds(-1)
        // Resend every frame still unacknowledged, in order, as soon as the embedder asks.
        gatedWrites = restored.unacked.keys.sorted().map { (sequence: 0, index: $0) }
        advance(now: now)
    }

    init(
        checkpoint: StreamCheckpoint, configuration: StreamConfiguration, durability: StreamDurability,
        now: StreamTime, randomSeed: UInt64
    ) throws(StreamError) {
        try configuration.validate()
        self.checkpoint = checkpoint
        self.configuration = configuration
        self.durability = durability
        durableSequence = checkpoint.sequence
        outboundSealer = checkpoint.outbound.map { FrameSealer(outbound: $0, boxSize: checkpoint.boxSize) }
        inboundSealer = checkpoint.inbound.map { FrameSealer(inbound: $0, boxSize: checkpoint.boxSize) }
        random = SplitMix64(seed: randomSeed)
        timer = RetransmitTimer(configuration: configuration, awaitsFirstAnswer: checkpoint.awaitsFirstAnswer)
        lastActivity = now
        pollInterval = configuration.minIdlePollInterval
        nextPollAt = now
        inboundReads = IndexSlots(span: configuration.readAhead)
        sendRecords = IndexSlots(span: configuration.sendWindow * 2)
        writeOperations = OperationSlots(span: configuration.sendWindow * 2) { $0.started }
        readOperations = OperationSlots(span: configuration.readAhead * 2) { $0.started }
    }

    static func checkBoxSize(_ boxSize: Int) throws(StreamError) {
        guard (FrameSealer.minBoxSize...FrameSealer.maxBoxSize).contains(boxSize) else {
            throw StreamError(.invalidConfiguration, "the transport's box size \(boxSize) is outside \(FrameSealer.minBoxSize)...\(FrameSealer.maxBoxSize) bytes")
        }
    }

    // MARK: - App inputs

    /// How many more bytes ``appWrite(_:now:)`` would accept now.
    public var writeCapacity: Int {
        guard checkpoint.outbound != nil, !checkpoint.closeRequested, failure == nil, !isHalted else { return 0 }
        return max(0, configuration.maxWriteBuffer - checkpoint.writeBufferCount)
    }

    /// Offers app bytes for sending.
    ///
    /// - Returns: how many bytes (a prefix) were accepted, and the journal sequence that must be
    ///   durable before the app may be told they were accepted.
    /// - Throws: ``StreamError/Code-swift.struct/closed`` after ``appClose(now:)``,
    ///   ``StreamError/Code-swift.struct/readOnly`` on a multicast reader, or the stream's failure.
    @discardableResult
    public mutating func appWrite(_ bytes: [UInt8], now: StreamTime) throws(StreamError) -> (accepted: Int, sequence: UInt64) {
        try appWrite(bytes[...], now: now)
    }

    /// Offers app bytes for sending from a slice, like the array form.
    ///
    /// An app that sends a large buffer piece by piece passes what is left of it; the accepted
    /// prefix is copied once, straight into the write buffer.
    @discardableResult
    public mutating func appWrite(_ bytes: ArraySlice<UInt8>, now: StreamTime) throws(StreamError) -> (accepted: Int, sequence: UInt64) {
        try checkUsable()
        guard checkpoint.outbound != nil else { throw StreamError(.readOnly, "this end of the stream can only read") }
        guard !checkpoint.closeRequested else { throw StreamError(.closed, "the stream was closed for writing") }
        let accepted = min(bytes.count, writeCapacity)
        guard accepted > 0 else { return (0, lastSequence) }
        do {
            try recordAppended(bytes.prefix(accepted))
        } catch {
            fail(error)
        }
        try checkUsable()  // Not accepted after all if that failed the stream (at `StreamCheckpoint.maxCounter`).
        let sequence = lastSequence
        lastActivity = now
        advance(now: now)
        return (accepted, sequence)
    }

    /// Takes up to `maxLength` received bytes, in order: ``peek(from:maxLength:)`` at
    /// ``StreamCheckpoint/bytesConsumed`` followed at once by ``consume(through:now:)``.
    ///
    /// At-least-once across crashes: the bytes are returned before their `consumed` record is
    /// durable, so a restore from before that record offers them again. For exactly-once
    /// delivery the app keeps its own offset and uses ``peek(from:maxLength:)`` and
    /// ``consume(through:now:)``.
    ///
    /// - Returns: the bytes; empty if none are buffered (check ``isReadFinished`` for the end)
    ///   or if the stream failed recording their consumption.
    public mutating func appRead(maxLength: Int, now: StreamTime) -> [UInt8] {
        let offset = checkpoint.bytesConsumed
        // Neither call can throw here except at `StreamCheckpoint.maxCounter`, which fails the stream.
        guard let bytes = try? peek(from: offset, maxLength: maxLength), !bytes.isEmpty,
              (try? consume(through: offset + UInt64(bytes.count), now: now)) != nil
        else { return [] }
        return bytes
    }

    /// Returns up to `maxLength` received bytes starting at stream offset `offset`, without
    /// consuming them.
    ///
    /// Valid offsets are ``StreamCheckpoint/bytesConsumed`` through
    /// ``StreamCheckpoint/deliveredBytes``; at `deliveredBytes` the result is empty. An offset
    /// beyond `deliveredBytes` also gives an empty result rather than an error: after a restore
    /// the app may hold bytes whose `frameReceived` records were not durable, so the machine has
    /// not received them (again) yet. The peer was never told they arrived (acknowledgements
    /// are sent only once durable) and resends their frames byte-identically, so the same bytes
    /// come again at the same offsets and a later peek finds them.
    ///
    /// It copies only the bytes it returns.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/invalidOffset`` if `offset` is below
    ///   ``StreamCheckpoint/bytesConsumed``: those bytes were consumed and are gone.
    public func peek(from offset: UInt64, maxLength: Int) throws(StreamError) -> [UInt8] {
        let consumed = checkpoint.bytesConsumed
        let delivered = checkpoint.deliveredBytes
        guard offset >= consumed else {
            throw StreamError(.invalidOffset, "offset \(offset) was already consumed; valid offsets are \(consumed)...\(delivered)")
        }
        guard offset < delivered, maxLength > 0 else { return [] }
        let skip = Int(offset - consumed)  // Below `readableCount`, an `Int`.
        return checkpoint.readBuffer.copy(from: skip, count: min(maxLength, checkpoint.readableCount - skip))
    }

    /// Confirms that the app has processed every received byte before stream offset `offset`,
    /// freeing them from the read buffer (reads paused by a full buffer resume).
    ///
    /// Confirming an offset at or below ``StreamCheckpoint/bytesConsumed`` again changes
    /// nothing, so an app may repeat a confirmation after a restore.
    ///
    /// - Returns: the journal sequence that must be durable before the app may rely on the
    ///   consumption, that is before it forgets the bytes' offsets: until then a crash restores
    ///   the bytes unconsumed.
    /// - Throws: ``StreamError/Code-swift.struct/invalidOffset`` if `offset` is beyond
    ///   ``StreamCheckpoint/deliveredBytes``; the stream's failure if recording fails.
    @discardableResult
    public mutating func consume(through offset: UInt64, now: StreamTime) throws(StreamError) -> UInt64 {
        let consumed = checkpoint.bytesConsumed
        let delivered = checkpoint.deliveredBytes
        guard offset <= delivered else {
            throw StreamError(.invalidOffset, "cannot consume through offset \(offset): valid offsets are \(consumed)...\(delivered)")
        }
        guard offset > consumed else { return lastSequence }
        do {
            try record(.consumed(Int(offset - consumed)))  // At most `readableCount`, an `Int`.
        } catch {
            fail(error)
            throw error
        }
        advance(now: now)
        return lastSequence
    }

    /// Closes this end's direction once everything buffered is sent (a half-close).
    public mutating func appClose(now: StreamTime) throws(StreamError) {
        try checkUsable()
        guard checkpoint.outbound != nil else { throw StreamError(.readOnly, "this end of the stream can only read") }
        guard !checkpoint.closeRequested else { return }
        recordOrFail(.closeRequested)
        lastActivity = now
        advance(now: now)
    }

    /// Stops all work: cancels every operation and ignores later completions.
    public mutating func halt() {
        guard !isHalted else { return }
        isHalted = true
        cancelAllOperations()
    }

    // MARK: - Transport and timer inputs

    /// Reports the outcome of a ``StreamAction/write(_:index:bytes:)``.
    public mutating func writeCompleted(_ operation: OperationID, result: Result<Void, BoxTransportError>, now: StreamTime) {
        guard let index = writeOperations.removeValue(forKey: operation)?.index else { return }
        if !confirmationCopies.isEmpty, let copy = confirmationCopies[index]?.inFlight.firstIndex(of: operation) {
            // A confirmation copy: if it failed, it is written again at once (the first write
            // may have been lost without a word, and then only the timer would notice).
            confirmationCopies.update(at: index) { $0.inFlight.remove(at: copy) }
            if case .failure(let error) = result, error.isTransient, failure == nil, !isHalted,
               let rewritten = confirmationCopies[index]?.rewritten, rewritten < configuration.quietFrameCopies {
                confirmationCopies.update(at: index) { $0.rewritten = rewritten + 1 }
                transmitConfirmationCopy(index, now: now)
            }
            advance(now: now)
            return
        }
        sendRecords.update(at: index) { if $0.inFlight == operation { $0.inFlight = nil } }
        guard failure == nil, !isHalted else { return }
        switch result {
        case .success:
            writeFailureShare -= writeFailureShare / Self.writeFailureWindow
            sendRecords.update(at: index) { $0.failuresInRow = 0 }
            if checkpoint.mode == .multicast, checkpoint.unacked[index] != nil, verifyReads[index] == nil {
                verifyReads[index] = startRead(channel: .outbound, index: index, mode: .poll, now: now)
            }
        case .failure(let error) where error.code == .alreadyExists:
            fail(StreamError(.transport, "box \(index) already holds different data; refusing to write another frame there"))
        case .failure(let error) where !error.isTransient:
            fail(StreamError(.transport, "writing box \(index) failed: \(error.message)"))
        case .failure:
            writeFailureShare += (1 - writeFailureShare) / Self.writeFailureWindow
            // A transient failure says nothing about the path's round trip: resend at once the
            // first time; if it keeps failing, the retransmission timer (with backoff) resends it.
            if let failures = sendRecords[index]?.failuresInRow {
                sendRecords[index]?.failuresInRow = failures + 1
                if failures == 0 { transmit(index, now: now, for: .failure) }
            }
        }
        advance(now: now)
    }

    /// Reports the outcome of a ``StreamAction/read(_:channel:index:mode:)``: the box's bytes,
    /// `nil` if it has not been written yet, or an error.
    public mutating func readCompleted(_ operation: OperationID, result: Result<[UInt8]?, BoxTransportError>, now: StreamTime) {
        guard let record = readOperations.removeValue(forKey: operation) else { return }
        guard failure == nil, !isHalted else { return }
        switch record.channel {
        case .outbound: verifyCompleted(record.index, operation: operation, result: result, now: now)
        case .inbound: inboundReadCompleted(record, operation: operation, result: result, now: now)
        }
        advance(now: now)
    }

    /// Confirms that journal records up to `sequence` are durable, releasing held-back sends.
    public mutating func markDurable(through sequence: UInt64, now: StreamTime) {
        durableSequence = max(durableSequence, min(sequence, lastSequence))
        advance(now: now)
    }

    /// Runs the timers that are due; call at or after ``nextDeadline``.
    public mutating func handleTimers(now: StreamTime) {
        guard failure == nil, !isHalted else { return }
        expireOperations(now: now)
        if let due = retransmitAt, now >= due { retransmit(now: now) }
        advance(now: now)
    }

    // MARK: - Outputs

    /// Takes the transport operations to perform, in order.
    public mutating func takeActions() -> [StreamAction] {
        guard !actions.isEmpty else { return [] }
        takenActions.removeAll(keepingCapacity: true)  // In place unless the embedder still holds it.
        swap(&actions, &takenActions)
        return takenActions
    }

    /// Takes the journal records made since the last call (``StreamDurability/explicit`` only).
    public mutating func takeJournal() -> [CheckpointRecord] {
        defer { journal.removeAll(keepingCapacity: true) }
        return journal
    }

    /// The earliest time at which ``handleTimers(now:)`` has work, if any.
    public var nextDeadline: StreamTime? {
        guard failure == nil, !isHalted else { return nil }
        var deadline: StreamTime?
        func consider(_ time: StreamTime?) {
            if let time, deadline.map({ time < $0 }) ?? true { deadline = time }
        }
        consider(retransmitAt)
        consider(ackDeadline)
        consider(readWakeAt)
        consider(operationDeadline)
        return deadline
    }

    /// The kind of this end's frame at `index` while it awaits acknowledgement, for
    /// measurements (which writes carry data, which only acknowledgements).
    public func unackedFrameKind(at index: UInt64) -> FrameKind? { checkpoint.unacked[index]?.kind }

    /// The journal sequence of the latest change.
    public var lastSequence: UInt64 { checkpoint.sequence }

    /// Whether the peer's direction ended and the app consumed all of it.
    public var isReadFinished: Bool { checkpoint.isReadFinished }

    /// Whether every byte written so far, and the FIN if closed, reached the peer (or, in
    /// multicast, was verified in the store).
    public var isWriteSettled: Bool { checkpoint.isWriteSettled }

    /// Whether this end closed its direction and the peer acknowledged the FIN.
    public var isClosed: Bool { checkpoint.closeRequested && checkpoint.isWriteSettled }

    /// A short, secret-free summary for logs and status displays.
    public var status: StreamStatus {
        StreamStatus(
            mode: checkpoint.mode, role: checkpoint.role, bytesWritten: checkpoint.bytesWritten,
            bytesConsumed: checkpoint.bytesConsumed, readable: checkpoint.readableCount,
            writeBuffered: checkpoint.writeBufferCount, unackedFrames: checkpoint.unackedCount,
            nextWriteIndex: checkpoint.nextWriteIndex, nextReadIndex: checkpoint.nextReadIndex,
            isClosed: isClosed, isReadFinished: isReadFinished, smoothedRTT: timer.smoothedRTT,
            failure: failure)
    }

    /// A detailed, secret-free dump of the machine's timers and outstanding frames and reads,
    /// for debugging.
    public var diagnostics: String {
        let frames = checkpoint.unacked.keys.sorted().prefix(40).map { index -> String in
            let record = sendRecords[index]
            let sent = record.map { "sent\($0.transmissions)@\($0.lastSent)\($0.inFlight == nil ? "" : "*")" } ?? "unsent"
            return "\(index):\(checkpoint.unacked[index]!.kind):\(sent)"
        }
        let reads = readOperations.entries.map(\.value).map { "\($0.channel == .inbound ? "in" : "out")\($0.index)/\($0.mode)" }.sorted()
        return "unacked=\(frames) reads=\(reads) retransmitAt=\(retransmitAt.map { "\($0)" } ?? "-") "
            + "ackDeadline=\(ackDeadline.map { "\($0)" } ?? "-") readWakeAt=\(readWakeAt.map { "\($0)" } ?? "-") "
            + "active=\(wasActive) pollInterval=\(pollInterval) rto=\(timer.baseTimeout) backoff=\(timer.backoffExponent) "
            + "gated=\(gatedWrites.count) durable=\(durableSequence)/\(lastSequence) peerAck=\(checkpoint.peerCumulativeAck) "
            + "pending=\(checkpoint.pending.keys.sorted())"
    }

    // MARK: - Internals: journal

    mutating func recordOrFail(_ delta: CheckpointDelta) {
        do {
            try record(delta)
        } catch {
            fail(error)
        }
    }

    mutating func record(_ delta: CheckpointDelta) throws(StreamError) {
        guard checkpoint.sequence < StreamCheckpoint.maxCounter else { throw StreamError(.invalidCheckpoint, "the journal is too long") }
        try checkpoint.apply(delta)
        checkpoint.sequence += 1
        if durability == .explicit {
            journal.append(CheckpointRecord(sequence: checkpoint.sequence, delta: delta))
        } else {
            durableSequence = checkpoint.sequence
        }
    }

    /// Records a received peer frame with `data` in place of its ``Frame/data``, like
    /// `record(.frameReceived(frame))` with the data in the frame: the data is copied into a
    /// frame only for the journal.
    ///
    /// - Returns: the frames it newly acknowledges, in index order, with their kinds.
    mutating func recordReceived(_ frame: Frame, data: ArraySlice<UInt8>) throws(StreamError) -> [(index: UInt64, kind: FrameKind)] {
        guard checkpoint.sequence < StreamCheckpoint.maxCounter else { throw StreamError(.invalidCheckpoint, "the journal is too long") }
        let acknowledged = try checkpoint.applyReceived(frame, data: data, listingAcknowledged: true)
        checkpoint.sequence += 1
        if durability == .explicit {
            var journaled = frame
            journaled.data = Array(data)
            journal.append(CheckpointRecord(sequence: checkpoint.sequence, delta: .frameReceived(journaled)))
        } else {
            durableSequence = checkpoint.sequence
        }
        return acknowledged
    }

    /// Records app bytes appended to the write buffer: as an ``CheckpointDelta/appended(_:)``
    /// record with ``StreamDurability/explicit`` durability; otherwise, with no journal to keep,
    /// straight from `bytes` into the write buffer, with no record array copied first.
    mutating func recordAppended(_ bytes: ArraySlice<UInt8>) throws(StreamError) {
        guard durability == .automatic else { return try record(.appended(Array(bytes))) }
        guard checkpoint.sequence < StreamCheckpoint.maxCounter else { throw StreamError(.invalidCheckpoint, "the journal is too long") }
        try checkpoint.append(bytes)
        checkpoint.sequence += 1
        durableSequence = checkpoint.sequence
    }

    mutating func checkUsable() throws(StreamError) {
        if let failure { throw failure }
        if isHalted { throw StreamError(.halted, "the stream was halted") }
    }

    mutating func fail(_ error: StreamError) {
        guard failure == nil else { return }
        failure = error
        cancelAllOperations()
    }

    mutating func cancelAllOperations() {
        for operation in (readOperations.keys + writeOperations.keys).sorted() {
            actions.append(.cancel(operation))
        }
        readOperations.removeAll()
        writeOperations.removeAll()
        inboundReads.removeAll()
        verifyReads.removeAll()
        aheadProbe = nil
        eagerReads.removeAll()
        eagerReadsIndex = nil
        gatedWrites.removeAll()
        budgetWaiting.removeAll()
        retransmitAt = nil
        timerRound = nil
        ackDeadline = nil
    }

    mutating func newOperation() -> OperationID {
        defer { nextOperation += 1 }
        return OperationID(rawValue: nextOperation)
    }

}

/// A secret-free snapshot of a stream's progress, for logs and status displays.
public struct StreamStatus: Sendable, Hashable {
    public var mode: StreamMode
    public var role: StreamRole
    public var bytesWritten: UInt64
    public var bytesConsumed: UInt64
    public var readable: Int
    public var writeBuffered: Int
    public var unackedFrames: Int
    public var nextWriteIndex: UInt64
    public var nextReadIndex: UInt64
    public var isClosed: Bool
    public var isReadFinished: Bool
    public var smoothedRTT: Duration?
    public var failure: StreamError?
}
