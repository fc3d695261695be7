/// The complete durable state of one end of a stream.
///
/// A checkpoint plus the ``CheckpointDelta`` records made after it restore the stream exactly.
/// The live ``StreamMachine`` changes its checkpoint only through ``apply(_:)``, the same code
/// that replays deltas, so a restored stream behaves identically to the one that was saved.
public struct StreamCheckpoint: Sendable, Hashable {
    /// The version of the checkpoint format.
    public static let formatVersion: UInt64 = 1

    /// The bound on a checkpoint's counters: frame indices stay below it, and next indices,
    /// stream offsets (data ends included) and journal sequence numbers at or below it.
    ///
    /// No stream comes near 2^62 frames, bytes or records, so a checkpoint or journal record
    /// beyond it is corrupt; the bound keeps the arithmetic on these counters (an index plus
    /// one, an offset plus a length, the read-ahead window) far from overflowing. ``apply(_:)``
    /// refuses to cross it, so a checkpoint the machine made always decodes again.
    static let maxCounter: UInt64 = 1 << 62

    /// The stream mode.
    public internal(set) var mode: StreamMode
    /// Which end this is.
    public internal(set) var role: StreamRole
    /// The box size the stream was created with; a different transport box size is refused.
    public internal(set) var boxSize: Int
    /// The sequence number of the last journal record folded into this checkpoint.
    public internal(set) var sequence: UInt64 = 0
    /// Keys for the direction this end writes, if it writes.
    var outbound: OutboundKeys?
    /// Keys for the direction this end reads, if it reads.
    var inbound: InboundKeys?

    // MARK: Sending
    /// The index the next created frame gets.
    public internal(set) var nextWriteIndex: UInt64 = 0
    /// App bytes accepted but not yet put into a frame.
    var writeBuffer = ByteQueue()
    /// The stream offset of the first byte of ``writeBuffer``: how many bytes are in frames.
    var framedBytes: UInt64 = 0
    /// Whether the app closed its direction.
    public internal(set) var closeRequested = false
    /// The index of the frame that first carried FIN.
    public internal(set) var finIndex: UInt64?
    /// Frames that must reach the peer and have not been acknowledged (or, in multicast, verified).
    var unacked = RetainedFrames()
    /// The peer's highest cumulative acknowledgement.
    public internal(set) var peerCumulativeAck: UInt64 = 0

    // MARK: Receiving
    /// The first peer index not yet resolved (received, or skipped as carrying no data).
    public internal(set) var nextReadIndex: UInt64 = 0
    /// The stream offset just past the last byte moved into ``readBuffer``.
    public internal(set) var deliveredBytes: UInt64 = 0
    /// Received, in-order data the app has not consumed yet.
    var readBuffer = ByteQueue()
    /// Frames received ahead of ``nextReadIndex``.
    var pending: [UInt64: ReceivedFrame] = [:]
    /// The stream offset at which the peer's direction ends, once its FIN is resolved.
    public internal(set) var peerFinOffset: UInt64?

    /// A frame kept for retransmission, with its exact ciphertext.
    ///
    /// Every frame is kept until the peer acknowledges it, ack-only frames included: a lost
    /// box would otherwise leave a hole the peer's reader could wait on for ever.
    struct RetainedFrame: Sendable, Hashable {
        var dataOffset: UInt64
        var dataLength: Int
        var kind: FrameKind
        var ciphertext: [UInt8]
    }

    /// A frame received ahead of order.
    struct ReceivedFrame: Sendable, Hashable {
        var dataOffset: UInt64
        var data: [UInt8]
        var fin: Bool
    }

    /// Creates the initial state of a new stream end.
    init(mode: StreamMode, role: StreamRole, boxSize: Int, outbound: OutboundKeys?, inbound: InboundKeys?) {
        self.mode = mode
        self.role = role
        self.boxSize = boxSize
        self.outbound = outbound
        self.inbound = inbound
    }

    /// App bytes written so far (framed or still buffered).
    public var bytesWritten: UInt64 { framedBytes + UInt64(writeBuffer.count) }
    /// Bytes the app has consumed so far.
    public var bytesConsumed: UInt64 { deliveredBytes - UInt64(readBuffer.count) }
    /// Bytes buffered for the app to read.
    public var readableCount: Int { readBuffer.count }
    /// Bytes buffered for sending.
    public var writeBufferCount: Int { writeBuffer.count }
    /// Frames awaiting acknowledgement or verification.
    public var unackedCount: Int { unacked.count }
    /// Data and FIN frames awaiting acknowledgement: the ones the send window counts.
    var unackedWindowFrames: Int { unacked.windowCount }
    /// Whether the peer's direction has ended and every byte of it was consumed.
    public var isReadFinished: Bool { peerFinOffset != nil && readBuffer.isEmpty }
    /// Whether this end waits for the peer's first frame: an end-to-end stream that has read
    /// nothing from its peer yet (a listener whose dialer has not joined).
    var awaitsFirstAnswer: Bool {
        mode == .endToEnd && inbound != nil && nextReadIndex == 0 && pending.isEmpty
    }
    /// Whether every written byte, and the FIN if closed, was acknowledged.
    public var isWriteSettled: Bool {
        writeBuffer.isEmpty && unacked.windowCount == 0 && (!closeRequested || finIndex != nil)
    }
}

/// What a sent frame is for.
public enum FrameKind: UInt8, Sendable, Hashable {
    /// Carries stream data.
    case data = 0
    /// The first frame carrying FIN (it may carry data too).
    case fin = 1
    /// Carries only acknowledgements.
    case ackOnly = 2
    /// Asks the peer for an acknowledgement (a probe after a retransmission timeout).
    case ping = 3

    /// Whether the frame counts against the send window.
    var countsTowardWindow: Bool { self == .data || self == .fin }
    /// Whether the peer must acknowledge the frame, so it arms the retransmission timer: the
    /// one rule, for frames sent and frames received alike.
    var elicitsAck: Bool { self != .ackOnly }

    /// The kind of a received frame: FIN counts only the first time it is seen, since every
    /// frame after the FIN repeats the flag.
    init(received frame: Frame, peerFinKnown: Bool) {
        self.init(received: frame, dataCount: frame.data.count, peerFinKnown: peerFinKnown)
    }

    /// The kind of a received frame that carries `dataCount` bytes (its ``Frame/data`` is ignored).
    init(received frame: Frame, dataCount: Int, peerFinKnown: Bool) {
        if frame.flags.contains(.fin) && !peerFinKnown {
            self = .fin
        } else if dataCount > 0 {
            self = .data
        } else if frame.flags.contains(.ping) {
            self = .ping
        } else {
            self = .ackOnly
        }
    }
}

/// One incremental change to a ``StreamCheckpoint``.
public enum CheckpointDelta: Sendable, Hashable {
    /// The app's bytes were accepted for sending.
    case appended([UInt8])
    /// The app closed its direction.
    case closeRequested
    /// A frame was created at `index`, consuming `dataLength` buffered bytes; its `ciphertext`
    /// is kept for byte-identical retransmission until the peer acknowledges it.
    case frameCreated(index: UInt64, dataLength: Int, kind: FrameKind, ciphertext: [UInt8])
    /// A peer frame was received: its acknowledgements and data.
    case frameReceived(Frame)
    /// A multicast frame was read back from the store, so it no longer needs resending.
    case verified(index: UInt64)
    /// The app consumed bytes from the read buffer.
    case consumed(Int)
}

/// A ``CheckpointDelta`` with its position in the stream's journal.
public struct CheckpointRecord: Sendable, Hashable {
    /// Position in the journal, counting from 1; durability is confirmed up to a sequence number.
    public var sequence: UInt64
    /// The change.
    public var delta: CheckpointDelta

    /// Creates a record.
    public init(sequence: UInt64, delta: CheckpointDelta) {
        self.sequence = sequence
        self.delta = delta
    }
}

extension StreamCheckpoint {
    /// Folds journal records into the checkpoint, skipping those it already holds.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/invalidCheckpoint`` if a record is missing
    ///   (sequence numbers must be contiguous) or a record does not apply.
    public mutating func replay(_ records: some Sequence<CheckpointRecord>) throws(StreamError) {
        for record in records where record.sequence > sequence {
            guard record.sequence == sequence + 1 else {
                throw StreamError(.invalidCheckpoint, "journal record \(sequence + 1) is missing (next is \(record.sequence))")
            }
            guard record.sequence <= Self.maxCounter else { throw StreamError(.invalidCheckpoint, "the journal is too long") }
            do {
                try apply(record.delta)
            } catch {
                throw StreamError(.invalidCheckpoint, "journal record \(record.sequence) does not apply: \(error.message)")
            }
            sequence = record.sequence
        }
    }

    /// Applies one delta, after checking it fully; on error the state is unchanged.
    public mutating func apply(_ delta: CheckpointDelta) throws(StreamError) {
        func bad(_ why: String) -> StreamError { StreamError(.invalidCheckpoint, why) }
        switch delta {
        case .appended(let bytes):
            try append(bytes[...])
        case .closeRequested:
            guard outbound != nil else { throw bad("close on a stream end that cannot write") }
            closeRequested = true
        case .frameCreated(let index, let length, let kind, let ciphertext):
            let fin = kind == .fin
            guard outbound != nil, index == nextWriteIndex else { throw bad("frame \(index) created out of order") }
            guard index < Self.maxCounter else { throw bad("the stream has too many frames") }
            guard length >= 0, length <= writeBuffer.count, kind == .data || kind == .fin || length == 0 else {
                throw bad("frame \(index) takes more bytes than are buffered")
            }
            guard !fin || (closeRequested && finIndex == nil && length == writeBuffer.count) else { throw bad("misplaced FIN in frame \(index)") }
            guard kind == .data || kind == .fin || mode == .endToEnd else { throw bad("control frame in a multicast stream") }
            guard ciphertext.count == boxSize else { throw bad("frame \(index) has the wrong size") }
            unacked[index] = RetainedFrame(dataOffset: framedBytes, dataLength: length, kind: kind, ciphertext: ciphertext)
            writeBuffer.drop(length)
            framedBytes += UInt64(length)
            nextWriteIndex += 1
            if fin { finIndex = index }
        case .frameReceived(let frame):
            _ = try applyReceived(frame, data: frame.data[...], listingAcknowledged: false)
        case .verified(let index):
            guard mode == .multicast, outbound != nil else { throw bad("verification outside a multicast writer") }
            unacked[index] = nil
        case .consumed(let count):
            guard count >= 0, count <= readBuffer.count else { throw bad("consumed more bytes than were buffered") }
            readBuffer.drop(count)
        }
    }

    /// Applies ``CheckpointDelta/appended(_:)`` with the bytes of `bytes`, after checking it;
    /// on error the state is unchanged.
    mutating func append(_ bytes: ArraySlice<UInt8>) throws(StreamError) {
        func bad(_ why: String) -> StreamError { StreamError(.invalidCheckpoint, why) }
        guard outbound != nil else { throw bad("append on a stream end that cannot write") }
        guard !closeRequested else { throw bad("append after close") }
        guard UInt64(writeBuffer.count) + UInt64(bytes.count) <= Self.maxCounter - framedBytes else { throw bad("the stream is too long") }
        writeBuffer.append(contentsOf: bytes)
    }

    /// Applies ``CheckpointDelta/frameReceived(_:)`` for `frame` with `data` in place of its
    /// ``Frame/data`` (which is ignored: a reader passes the bytes where it opened them, and they
    /// are copied only into the read buffer, or once to be kept if the frame arrived ahead of
    /// order), after checking it; on error the state is unchanged.
    ///
    /// - Returns: with `listingAcknowledged`, the frames the peer's frame newly acknowledges, in
    ///   index order, with their kinds; otherwise nothing.
    mutating func applyReceived(_ frame: Frame, data: ArraySlice<UInt8>, listingAcknowledged: Bool) throws(StreamError) -> [(index: UInt64, kind: FrameKind)] {
        func violation(_ why: String) -> StreamError { StreamError(.protocolViolation, why) }
        guard inbound != nil else { throw violation("frame received on a stream end that cannot read") }
        guard frame.index >= nextReadIndex, pending[frame.index] == nil else {
            throw violation("frame \(frame.index) was already received")
        }
        // A frame read from a box is within the read-ahead window; a journal record may hold anything.
        guard frame.index < Self.maxCounter, UInt64(data.count) <= Self.maxCounter, frame.dataOffset <= Self.maxCounter - UInt64(data.count) else {
            throw violation("frame \(frame.index) has an index or offset out of range")
        }
        // Acknowledgements must only name frames that exist.
        if mode == .multicast || outbound == nil {
            guard frame.cumulativeAck == 0, frame.sackRanges.isEmpty, !frame.flags.contains(.ping) else {
                throw violation("a multicast frame carries acknowledgements")
            }
        } else {
            guard frame.cumulativeAck <= nextWriteIndex else {
                throw violation("the peer acknowledged frame \(frame.cumulativeAck - 1), but only \(nextWriteIndex) were sent")
            }
            if let last = frame.sackRanges.last, last.end > nextWriteIndex {
                throw violation("the peer selectively acknowledged frames that were never sent")
            }
        }
        let fin = frame.flags.contains(.fin)
        // Dry run of the resolution with this frame added: detects inconsistent offsets before any change.
        _ = try resolve(adding: frame.index, dataOffset: frame.dataOffset, data: data, fin: fin, commit: false)

        var acknowledged: [(index: UInt64, kind: FrameKind)] = []
        if outbound != nil && mode == .endToEnd {
            peerCumulativeAck = max(peerCumulativeAck, frame.cumulativeAck)
            let cumulative = peerCumulativeAck
            let ranges = frame.sackRanges
            unacked.forEach { index, retained in
                if index < cumulative || ranges.contains(where: { $0.contains(index) }) { acknowledged.append((index, retained.kind)) }
            }
            for (index, _) in acknowledged { unacked[index] = nil }
            if listingAcknowledged, acknowledged.count > 1 { acknowledged.sort { $0.index < $1.index } }
        }
        _ = try resolve(adding: frame.index, dataOffset: frame.dataOffset, data: data, fin: fin, commit: true)
        return listingAcknowledged ? acknowledged : []
    }

    /// Walks received frames from ``nextReadIndex`` in order, moving their data to the read buffer.
    ///
    /// A missing index is skipped when the next received frame starts at the delivered offset:
    /// then no data can be missing, so the absent frame was an ack-only or ping frame whose
    /// information later frames repeat. Data frames are never skipped.
    /// The frame added is frame `index` at `dataOffset` with `data`, with FIN if `fin`.
    private mutating func resolve(adding index: UInt64, dataOffset: UInt64, data: ArraySlice<UInt8>, fin addedFin: Bool, commit: Bool) throws(StreamError) -> Bool {
        func violation(_ why: String) -> StreamError { StreamError(.protocolViolation, why) }
        var next = nextReadIndex
        var delivered = deliveredBytes
        var fin = peerFinOffset
        var resolvedAny = false
        // With nothing pending the new frame is the only candidate: no index list is made.
        let pendingEmpty = pending.isEmpty
        var indices: [UInt64] = []
        if !pendingEmpty {
            indices = pending.keys.filter { $0 >= next }
            indices.append(index)
            indices.sort()
        }
        for position in 0..<(pendingEmpty ? 1 : indices.count) {
            let i = pendingEmpty ? index : indices[position]
            let candidate = i == index ? nil : pending[i]!
            let candidateOffset = candidate?.dataOffset ?? dataOffset
            let candidateCount = candidate?.data.count ?? data.count
            let candidateFin = candidate?.fin ?? addedFin
            if candidateOffset > delivered {
                if i == next { throw violation("frame \(i) leaves a gap in the data") }
                break  // The missing frames before it carry data; wait for them.
            }
            if candidateOffset < delivered && candidateCount > 0 {
                throw violation("frame \(i) overlaps data already received")
            }
            if candidateOffset < delivered { throw violation("frame \(i) has an offset behind the stream") }
            let end = candidateOffset + UInt64(candidateCount)
            if let fin {
                guard candidateFin, end == fin else { throw violation("frame \(i) continues the stream past its end") }
            } else if candidateFin {
                fin = end
            }
            if commit {
                if let candidate {
                    readBuffer.append(contentsOf: candidate.data)
                    pending[i] = nil
                } else {
                    readBuffer.append(contentsOf: data)
                }
            }
            delivered = end
            next = i + 1
            resolvedAny = true
        }
        if commit {
            nextReadIndex = next
            deliveredBytes = delivered
            peerFinOffset = fin
            if index >= next { pending[index] = ReceivedFrame(dataOffset: dataOffset, data: Array(data), fin: addedFin) }
        }
        return resolvedAny
    }
}
