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

    private let outboundSealer: FrameSealer?
    private let inboundSealer: FrameSealer?
    private var random: SplitMix64
    private var timer: RetransmitTimer

    // Journal and durability gating.
    private var journal: [CheckpointRecord] = []
    /// The highest journal sequence confirmed durable.
    public private(set) var durableSequence: UInt64
    private var gatedWrites: [(sequence: UInt64, index: UInt64)] = []

    private var actions: [StreamAction] = []
    private var nextOperation: UInt64 = 1

    // Sending.
    private struct SendRecord {
        var firstSent: StreamTime
        var lastSent: StreamTime
        var transmissions: Int
        var inFlight: OperationID?
        /// Transient write failures in a row; the first is resent at once, later ones wait for
        /// the retransmission timer.
        var failuresInRow = 0
    }
    private struct WriteOperation {
        var index: UInt64
        var started: StreamTime
    }
    private var sendRecords: [UInt64: SendRecord] = [:]
    private var writeOperations: [OperationID: WriteOperation] = [:]
    /// Frames due for a (re)send that wait for room in the operation budget, lowest index first.
    private var budgetWaiting: Set<UInt64> = []
    private var retransmitAt: StreamTime?
    private var probeRequested = false
    /// A bound on unacknowledged pings (at most one is made per retransmission timeout).
    private static let maxOutstandingProbes = 64
    static let maxRetainedAckOnlyFrames = 1024

    // Acknowledging.
    private var ackDeadline: StreamTime?
    private var elicitingSinceAck = 0

    // Reading.
    private struct ReadRecord {
        var channel: StreamChannel
        var index: UInt64
        var mode: BoxReadMode
        var started: StreamTime
    }
    private var readOperations: [OperationID: ReadRecord] = [:]
    /// Why this stream's box writes were made, since it was created or restored.
    public private(set) var sendStatistics = StreamSendStatistics()
    private var inboundReads: [UInt64: OperationID] = [:]
    private var verifyReads: [UInt64: OperationID] = [:]
    private var retryReadAt: [UInt64: StreamTime] = [:]
    private var decryptFailures: [UInt64: Int] = [:]
    private var readFailures: [UInt64: Int] = [:]
    /// The read index below which the per-index read state above was last cleared.
    private var perIndexStateFrom: UInt64 = 0
    private var lastActivity: StreamTime
    private var wasActive = true
    private var pollInterval: Duration
    private var nextPollAt: StreamTime
    /// When the read scheduler next has something to do (a retry, a poll, or going idle).
    private var readWakeAt: StreamTime?

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

    private init(
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
        timer = RetransmitTimer(configuration: configuration)
        lastActivity = now
        pollInterval = configuration.minIdlePollInterval
        nextPollAt = now
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
        try checkUsable()
        guard checkpoint.outbound != nil else { throw StreamError(.readOnly, "this end of the stream can only read") }
        guard !checkpoint.closeRequested else { throw StreamError(.closed, "the stream was closed for writing") }
        let accepted = min(bytes.count, writeCapacity)
        guard accepted > 0 else { return (0, lastSequence) }
        recordOrFail(.appended(accepted == bytes.count ? bytes : Array(bytes.prefix(accepted))))
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
        return Array(checkpoint.readBuffer.bytes.dropFirst(skip).prefix(maxLength))
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
        if sendRecords[index]?.inFlight == operation { sendRecords[index]?.inFlight = nil }
        guard failure == nil, !isHalted else { return }
        switch result {
        case .success:
            sendRecords[index]?.failuresInRow = 0
            if checkpoint.mode == .multicast, checkpoint.unacked[index] != nil, verifyReads[index] == nil {
                verifyReads[index] = startRead(channel: .outbound, index: index, mode: .poll, now: now)
            }
        case .failure(let error) where error.code == .alreadyExists:
            fail(StreamError(.transport, "box \(index) already holds different data; refusing to write another frame there"))
        case .failure(let error) where !error.isTransient:
            fail(StreamError(.transport, "writing box \(index) failed: \(error.message)"))
        case .failure:
            // A transient failure says nothing about the path's round trip: resend at once the
            // first time; if it keeps failing, the retransmission timer (with backoff) resends it.
            if let failures = sendRecords[index]?.failuresInRow {
                sendRecords[index]?.failuresInRow = failures + 1
                if failures == 0 { transmit(index, now: now, counting: \.failureResends) }
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
        defer { actions.removeAll(keepingCapacity: true) }
        return actions
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
        let reads = readOperations.values.map { "\($0.channel == .inbound ? "in" : "out")\($0.index)/\($0.mode)" }.sorted()
        return "unacked=\(frames) reads=\(reads) retransmitAt=\(retransmitAt.map { "\($0)" } ?? "-") "
            + "ackDeadline=\(ackDeadline.map { "\($0)" } ?? "-") readWakeAt=\(readWakeAt.map { "\($0)" } ?? "-") "
            + "active=\(wasActive) pollInterval=\(pollInterval) rto=\(timer.baseTimeout) backoff=\(timer.backoffExponent) "
            + "gated=\(gatedWrites.count) durable=\(durableSequence)/\(lastSequence) peerAck=\(checkpoint.peerCumulativeAck) "
            + "pending=\(checkpoint.pending.keys.sorted())"
    }

    // MARK: - Internals: journal

    private mutating func recordOrFail(_ delta: CheckpointDelta) {
        do {
            try record(delta)
        } catch {
            fail(error)
        }
    }

    private mutating func record(_ delta: CheckpointDelta) throws(StreamError) {
        guard checkpoint.sequence < StreamCheckpoint.maxCounter else { throw StreamError(.invalidCheckpoint, "the journal is too long") }
        try checkpoint.apply(delta)
        checkpoint.sequence += 1
        if durability == .explicit {
            journal.append(CheckpointRecord(sequence: checkpoint.sequence, delta: delta))
        } else {
            durableSequence = checkpoint.sequence
        }
    }

    private mutating func checkUsable() throws(StreamError) {
        if let failure { throw failure }
        if isHalted { throw StreamError(.halted, "the stream was halted") }
    }

    private mutating func fail(_ error: StreamError) {
        guard failure == nil else { return }
        failure = error
        cancelAllOperations()
    }

    private mutating func cancelAllOperations() {
        for operation in (Array(readOperations.keys) + Array(writeOperations.keys)).sorted() {
            actions.append(.cancel(operation))
        }
        readOperations.removeAll()
        writeOperations.removeAll()
        inboundReads.removeAll()
        verifyReads.removeAll()
        gatedWrites.removeAll()
        budgetWaiting.removeAll()
        retransmitAt = nil
        ackDeadline = nil
    }

    private mutating func newOperation() -> OperationID {
        defer { nextOperation += 1 }
        return OperationID(rawValue: nextOperation)
    }

    // MARK: - Internals: the pump

    /// Does everything the current state allows: creates frames, releases durable sends,
    /// sends acknowledgements and keeps the read window full.
    private mutating func advance(now: StreamTime) {
        guard failure == nil, !isHalted else { return }
        createFrames(now: now)
        sendBudgetWaiting(now: now)
        releaseGatedWrites(now: now)
        scheduleReads(now: now)
        sendBudgetWaiting(now: now)  // Into the room reads made.
    }

    /// Operations in flight, against ``StreamConfiguration/maxOperationsInFlight``.
    private var operationsInFlight: Int { writeOperations.count + readOperations.count }

    /// Writes leave one slot of the budget to reads, so that the stream always reads on.
    private var writeBudget: Int {
        configuration.maxOperationsInFlight - (checkpoint.inbound != nil ? 1 : 0)
    }

    /// Sends frames that waited for room in the budget, lowest index (oldest) first.
    private mutating func sendBudgetWaiting(now: StreamTime) {
        while operationsInFlight < writeBudget, let index = budgetWaiting.min() {
            budgetWaiting.remove(index)
            transmit(index, now: now, counting: sendRecords[index] == nil ? \.firstSends : \.timeoutResends)
        }
    }

    /// When the oldest operation in flight reaches ``StreamConfiguration/operationTimeout``.
    private var operationDeadline: StreamTime? {
        var oldest: StreamTime?
        for operation in writeOperations.values where oldest.map({ operation.started < $0 }) ?? true { oldest = operation.started }
        for operation in readOperations.values where oldest.map({ operation.started < $0 }) ?? true { oldest = operation.started }
        return oldest.map { $0 + configuration.operationTimeout }
    }

    /// Cancels operations in flight for ``StreamConfiguration/operationTimeout`` and issues them
    /// again (a write resends the same ciphertext; reads are re-planned), oldest first.
    private mutating func expireOperations(now: StreamTime) {
        let timeout = configuration.operationTimeout
        for operation in writeOperations.filter({ now - $0.value.started >= timeout }).keys.sorted() {
            guard let index = writeOperations.removeValue(forKey: operation)?.index else { continue }
            actions.append(.cancel(operation))
            if sendRecords[index]?.inFlight == operation { sendRecords[index]?.inFlight = nil }
            transmit(index, now: now, counting: \.deadlineResends)
        }
        for operation in readOperations.filter({ now - $0.value.started >= timeout }).keys.sorted() {
            guard let record = readOperations.removeValue(forKey: operation) else { continue }
            actions.append(.cancel(operation))
            switch record.channel {
            case .inbound:
                if inboundReads[record.index] == operation { inboundReads[record.index] = nil }
            case .outbound:
                if verifyReads[record.index] == operation {
                    verifyReads[record.index] = startRead(channel: .outbound, index: record.index, mode: .poll, now: now)
                }
            }
        }
    }

    private mutating func createFrames(now: StreamTime) {
        guard let sealer = outboundSealer else { return }
        let endToEnd = checkpoint.mode == .endToEnd
        var createdEliciting = false
        var createdAny = false
        while failure == nil, checkpoint.unackedWindowFrames < configuration.sendWindow {
            let buffered = checkpoint.writeBufferCount
            let finDue = checkpoint.closeRequested && checkpoint.finIndex == nil
            guard buffered > 0 || finDue else { break }
            let sack = endToEnd ? currentSackRanges(limit: Frame.maxSackRangesWithData) : []
            let take = min(buffered, Frame.dataCapacity(plaintextSize: sealer.plaintextSize, sackCount: sack.count))
            let fin = finDue && take == buffered
            let frame = makeFrame(flags: fin ? .fin : [], sack: sack, data: Array(checkpoint.writeBuffer.bytes.prefix(take)))
            emitFrame(frame, kind: fin ? .fin : .data, sealer: sealer)
            createdEliciting = true
            createdAny = true
        }
        guard endToEnd, failure == nil else { return }
        if probeRequested && !createdEliciting {
            let outstandingProbes = checkpoint.unacked.values.lazy.filter { $0.kind == .ping }.count
            if outstandingProbes < Self.maxOutstandingProbes {
                let sack = currentSackRanges(limit: Frame.sackCapacity(plaintextSize: sealer.plaintextSize))
                emitFrame(makeFrame(flags: .ping, sack: sack, data: []), kind: .ping, sealer: sealer)
                createdAny = true
            }
        }
        probeRequested = false
        if !createdAny, let due = ackDeadline, now >= due, checkpoint.inbound != nil {
            // Ack-only frames are kept until the peer acknowledges them, which an honest peer does
            // with every frame it sends; one that keeps eliciting acks without ever acknowledging
            // them would make that set grow without bound.
            let retained = checkpoint.unacked.values.lazy.filter { $0.kind == .ackOnly }.count
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

    private func makeFrame(flags: Frame.Flags, sack: [IndexRange], data: [UInt8]) -> Frame {
        var flags = flags
        if checkpoint.finIndex != nil { flags.insert(.fin) }  // FIN is repeated on every later frame.
        let endToEnd = checkpoint.mode == .endToEnd
        return Frame(
            index: checkpoint.nextWriteIndex, flags: flags, dataOffset: checkpoint.framedBytes,
            cumulativeAck: endToEnd ? checkpoint.nextReadIndex : 0, sackRanges: sack, data: data)
    }

    private mutating func emitFrame(_ frame: Frame, kind: FrameKind, sealer: FrameSealer) {
        let ciphertext = sealer.seal(frame)
        recordOrFail(.frameCreated(index: frame.index, dataLength: frame.data.count, kind: kind, ciphertext: ciphertext))
        gatedWrites.append((sequence: lastSequence, index: frame.index))
    }

    /// The ranges of peer frames held above the cumulative acknowledgement, lowest first, at
    /// most `limit` of them.
    private func currentSackRanges(limit: Int) -> [IndexRange] {
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
    private mutating func releaseGatedWrites(now: StreamTime) {
        var released = 0
        for entry in gatedWrites {
            guard entry.sequence <= durableSequence else { break }
            released += 1
            transmit(entry.index, now: now, counting: \.firstSends)
        }
        gatedWrites.removeFirst(released)
    }

    /// Writes a retained frame's exact ciphertext.
    private mutating func transmit(_ index: UInt64, now: StreamTime, counting reason: WritableKeyPath<StreamSendStatistics, Int>) {
        guard let frame = checkpoint.unacked[index], sendRecords[index]?.inFlight == nil else { return }
        guard operationsInFlight < writeBudget else {
            budgetWaiting.insert(index)
            return
        }
        budgetWaiting.remove(index)
        sendStatistics[keyPath: reason] += 1
        let operation = newOperation()
        writeOperations[operation] = WriteOperation(index: index, started: now)
        actions.append(.write(operation, index: index, bytes: frame.ciphertext))
        if var record = sendRecords[index] {
            record.lastSent = now
            record.transmissions += 1
            record.inFlight = operation
            sendRecords[index] = record
        } else {
            sendRecords[index] = SendRecord(firstSent: now, lastSent: now, transmissions: 1, inFlight: operation)
        }
        if retransmitAt == nil && frame.kind.elicitsAck { armRetransmitTimer(now: now) }
    }

    /// Arms the retransmission timer for the oldest frame awaiting an answer (never earlier
    /// than `minRetransmitTimeout` from now), or stops it if nothing needs acknowledging.
    private mutating func armRetransmitTimer(now: StreamTime) {
        var oldest: StreamTime?
        for (index, frame) in checkpoint.unacked where frame.kind.elicitsAck {
            guard let record = sendRecords[index] else { continue }
            // A frame in flight, or queued for the budget, is about to be sent: it cannot have timed out.
            let sent = record.inFlight == nil && !budgetWaiting.contains(index) ? record.lastSent : now
            if oldest.map({ sent < $0 }) ?? true { oldest = sent }
        }
        guard let oldest else {
            retransmitAt = nil
            return
        }
        retransmitAt = max(oldest + timer.timeout(jitter: random.unit()), now + configuration.minRetransmitTimeout)
    }

    /// The retransmission timeout fired: resend what may be lost and probe for lost acknowledgements.
    ///
    /// Only frames outstanding for a whole timeout are resent, so a window of frames sent one
    /// after another is not resent all at once when the oldest times out. Data, FIN and ping
    /// frames up to the newest one that needs an answer are resent; ack-only frames only within
    /// a range above the frame the peer's reader last said it waits on (it may be stuck on a
    /// lost one there; beyond, later frames carry newer acknowledgements): one read-ahead,
    /// doubling with each expiry without progress. That bounds the resends however many
    /// acknowledgements pile up, and still reaches a peer whose position we know only late.
    private mutating func retransmit(now: StreamTime) {
        let threshold = timer.timeout(jitter: 0).scaled(by: 0.9)
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
        for index in checkpoint.unacked.keys.sorted() where index <= highest {
            guard let kind = checkpoint.unacked[index]?.kind,
                  kind.elicitsAck || index < ackOnlyLimit,
                  let record = sendRecords[index], record.inFlight == nil, !budgetWaiting.contains(index),
                  now - record.lastSent >= threshold
            else { continue }
            transmit(index, now: now, counting: \.timeoutResends)
            resent = true
        }
        // A new frame the peer must acknowledge, in case only its acknowledgements were lost:
        // rewriting a box the peer already read shows it nothing new.
        if resent && checkpoint.mode == .endToEnd { probeRequested = true }
        armRetransmitTimer(now: now)
    }

    /// Processes acknowledgement progress: RTT samples, backoff reset, fast retransmission.
    private mutating func acknowledged(_ indices: [UInt64], kinds: [UInt64: FrameKind], now: StreamTime) {
        guard !indices.isEmpty else { return }
        var progress = false
        for index in indices {
            budgetWaiting.remove(index)
            guard let record = sendRecords.removeValue(forKey: index) else { continue }
            if let operation = record.inFlight {
                writeOperations[operation] = nil
                actions.append(.cancel(operation))
            }
            if record.transmissions == 1 { timer.addSample(now - record.firstSent) }
            // Only data reaching the peer is progress: acknowledged pings and acknowledgements
            // must not reset the backoff while a data frame stays stuck.
            if kinds[index]?.countsTowardWindow ?? false { progress = true }
        }
        for index in indices {
            if let operation = verifyReads.removeValue(forKey: index) {
                readOperations[operation] = nil
                actions.append(.cancel(operation))
            }
        }
        if progress { timer.resetBackoff() }
        armRetransmitTimer(now: now)
    }

    /// Resends frames a peer frame shows to be missing: the one its reader waits on (its
    /// cumulative acknowledgement) and those below its highest selective acknowledgement.
    ///
    /// The frame the peer waits on is resent even if it is an ack-only frame, which the
    /// retransmission timer alone would not resend: otherwise a peer stuck on a lost
    /// ack-only box would never read the acknowledgements behind it.
    private mutating func fastRetransmit(after frame: Frame, now: StreamTime) {
        let sackTop = frame.sackRanges.last?.end ?? 0
        let threshold = timer.smoothedRTT.map { $0.scaled(by: 9.0 / 8.0) } ?? timer.baseTimeout
        for index in checkpoint.unacked.keys.sorted() where index < sackTop {
            guard let record = sendRecords[index], record.inFlight == nil, now - record.lastSent >= threshold else { continue }
            transmit(index, now: now, counting: \.sackResends)
        }
        // The peer says it waits on this box: each of its frames saying so may trigger a resend
        // (rewriting a box is idempotent; under loss this is the fastest recovery).
        // Not more often than once per round trip: earlier copies may still be on their way.
        if let record = sendRecords[frame.cumulativeAck], record.inFlight == nil,
           now - record.lastSent >= max(configuration.minRetransmitTimeout, timer.smoothedRTT ?? timer.baseTimeout) {
            transmit(frame.cumulativeAck, now: now, counting: \.waitedOnResends)
        }
    }

    // MARK: - Internals: reading

    private mutating func startRead(channel: StreamChannel, index: UInt64, mode: BoxReadMode, now: StreamTime) -> OperationID {
        let operation = newOperation()
        readOperations[operation] = ReadRecord(channel: channel, index: index, mode: mode, started: now)
        actions.append(.read(operation, channel: channel, index: index, mode: mode))
        return operation
    }

    private mutating func cancelRead(_ operation: OperationID) {
        readOperations[operation] = nil
        actions.append(.cancel(operation))
    }

    /// Whether the stream is active: it expects frames soon, so it keeps blocking reads open.
    ///
    /// A stream stays active for ``StreamConfiguration/idleAfter`` after its last activity, and
    /// at least twice the current retransmission timeout, so that a peer retransmitting with
    /// backoff does not find it polling slowly.
    private func isActive(now: StreamTime) -> Bool {
        now < lastActivity + activeWindow || !checkpoint.isWriteSettled || ackDeadline != nil
            || checkpoint.unacked.values.contains { $0.kind.elicitsAck }
    }

    private var activeWindow: Duration { max(configuration.idleAfter, timer.timeout(jitter: 0) * 2) }

    /// Whether the stream is closed both ways and has lingered long enough to answer a peer
    /// whose last acknowledgement was lost: then it reads nothing more.
    private func hasFinishedLingering(now: StreamTime) -> Bool {
        isInboundFinished && (checkpoint.outbound == nil || isClosed) && now >= lastActivity + configuration.closeLinger
    }

    /// Whether the peer closed its direction and every byte up to its FIN arrived.
    private var isInboundFinished: Bool {
        checkpoint.peerFinOffset.map { checkpoint.deliveredBytes == $0 } ?? false
    }

    /// Keeps the read window full while active; polls the next index with backoff while idle.
    private mutating func scheduleReads(now: StreamTime) {
        readWakeAt = nil
        guard checkpoint.inbound != nil else { return }
        let first = checkpoint.nextReadIndex
        for (index, operation) in inboundReads where index < first || checkpoint.pending[index] != nil {
            inboundReads[index] = nil
            cancelRead(operation)
        }
        if first != perIndexStateFrom {
            // Only when the reader moved on: these are rebuilt, not edited in place.
            perIndexStateFrom = first
            retryReadAt = retryReadAt.filter { $0.key >= first }
            decryptFailures = decryptFailures.filter { $0.key >= first }
            readFailures = readFailures.filter { $0.key >= first }
        }

        let active = isActive(now: now)
        if active != wasActive {
            wasActive = active
            if active {
                pollInterval = configuration.minIdlePollInterval
            } else {
                // Going idle: stop the blocking reads, poll the next index instead.
                for (_, operation) in inboundReads where readOperations[operation]?.mode == .wait { cancelRead(operation) }
                inboundReads = inboundReads.filter { readOperations[$0.value] != nil }
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
            let readLimit = max(1, configuration.maxOperationsInFlight - writeOperations.count - budgetWaiting.count)
            if readOperations.count > readLimit {
                for index in inboundReads.keys.sorted(by: >) where index != first && readOperations.count > readLimit {
                    if let operation = inboundReads.removeValue(forKey: index) { cancelRead(operation) }
                }
            }
            for index in first..<(first + UInt64(depth)) {
                guard readOperations.count < readLimit else { break }
                guard checkpoint.pending[index] == nil, inboundReads[index] == nil else { continue }
                if let retry = retryReadAt[index], retry > now {
                    wake(at: retry)
                    continue
                }
                retryReadAt[index] = nil
                inboundReads[index] = startRead(channel: .inbound, index: index, mode: .wait, now: now)
            }
            let idleAt = lastActivity + activeWindow
            if idleAt > now { wake(at: idleAt) }
        } else if inboundReads.isEmpty, !hasFinishedLingering(now: now) {
            if now >= nextPollAt {
                inboundReads[first] = startRead(channel: .inbound, index: first, mode: .poll, now: now)
            } else {
                wake(at: nextPollAt)
            }
        }
    }

    private mutating func inboundReadCompleted(_ record: ReadRecord, operation: OperationID, result: Result<[UInt8]?, BoxTransportError>, now: StreamTime) {
        let index = record.index
        if inboundReads[index] == operation { inboundReads[index] = nil }
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
                pollInterval = min(pollInterval * 2, configuration.maxIdlePollInterval)
            } else {
                // The transport stopped waiting; ask again shortly (not in a tight loop).
                retryReadAt[index] = now + configuration.minRetransmitTimeout
            }
        case .success(let bytes?):
            guard index >= checkpoint.nextReadIndex, checkpoint.pending[index] == nil, let sealer = inboundSealer else { return }
            let frame: Frame
            do {
                frame = try sealer.open(bytes, index: index)
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
            receive(frame, now: now)
        }
    }

    private mutating func receive(_ frame: Frame, now: StreamTime) {
        let elicits = FrameKind(received: frame, peerFinKnown: checkpoint.peerFinOffset != nil).elicitsAck
        readFailures.removeAll()
        let kindsBefore = checkpoint.unacked.mapValues(\.kind)
        do {
            try record(.frameReceived(frame))
        } catch {
            fail(error)
            return
        }
        decryptFailures[frame.index] = nil
        lastActivity = now
        acknowledged(kindsBefore.keys.filter { checkpoint.unacked[$0] == nil }.sorted(), kinds: kindsBefore, now: now)
        fastRetransmit(after: frame, now: now)
        if elicits, checkpoint.mode == .endToEnd, checkpoint.outbound != nil {
            elicitingSinceAck += 1
            let immediate = elicitingSinceAck >= max(2, configuration.readAhead / 2)
            // Coalesce more acknowledgements on slow paths: each one costs a box write.
            let delay = max(configuration.ackDelay, (timer.smoothedRTT ?? .zero) / 8)
            let due = immediate ? now : now + delay
            ackDeadline = min(ackDeadline ?? due, due)
        }
    }

    private mutating func verifyCompleted(_ index: UInt64, operation: OperationID, result: Result<[UInt8]?, BoxTransportError>, now: StreamTime) {
        if verifyReads[index] == operation { verifyReads[index] = nil }
        guard case .success(let bytes?) = result, let frame = checkpoint.unacked[index] else { return }
        guard bytes == frame.ciphertext else {
            fail(StreamError(.transport, "box \(index) holds different data than this stream wrote"))
            return
        }
        recordOrFail(.verified(index: index))
        acknowledged([index], kinds: [index: frame.kind], now: now)
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

    /// Creates empty statistics.
    public init() {}

    /// Adds another machine's (or incarnation's) counts.
    public mutating func add(_ other: StreamSendStatistics) {
        firstSends += other.firstSends
        timeoutResends += other.timeoutResends
        sackResends += other.sackResends
        waitedOnResends += other.waitedOnResends
        failureResends += other.failureResends
        deadlineResends += other.deadlineResends
    }
}
