/// A range of box indices `[start, start + count)`, used in selective acknowledgements.
public struct IndexRange: Hashable, Sendable {
    /// The first index.
    public var start: UInt64
    /// The number of indices (at least 1).
    public var count: UInt32

    /// Creates a range.
    public init(start: UInt64, count: UInt32) {
        self.start = start
        self.count = count
    }

    /// One past the last index.
    public var end: UInt64 { start &+ UInt64(count) }

    /// Whether the range holds `index`.
    public func contains(_ index: UInt64) -> Bool { index >= start && index < end }
}

/// One frame of a stream direction: the plaintext that is sealed into box `index`.
///
/// See `docs/PROTOCOL.md` §3 for the byte layout.
public struct Frame: Hashable, Sendable {
    /// Flags carried by a frame.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// The sender has closed its direction; the stream ends at ``Frame/dataOffset`` + data count.
        /// Every later frame repeats it.
        public static let fin = Flags(rawValue: 1)
        /// The sender asks for an acknowledgement although the frame carries no data.
        public static let ping = Flags(rawValue: 2)
        /// The sender asks for an acknowledgement at once rather than after the receiver's
        /// delayed-ack timer: it is about to run out of window or data, or it has sent a quarter
        /// of its window since it last asked. The receiver otherwise acknowledges late, so that
        /// acknowledgements cost few box writes.
        public static let ackNow = Flags(rawValue: 4)
        /// The sender is writing at a low rate: this data frame emptied its write buffer and is
        /// its only one outstanding. Its next frame comes at an unknown later time, so the
        /// receiver reads the next box with several reads at once, to see that frame sooner.
        public static let quiet = Flags(rawValue: 8)
        static let known: Flags = [.fin, .ping, .ackNow, .quiet]
    }

    /// The box index this frame belongs in; checked against the box it was read from.
    public var index: UInt64
    /// The frame's flags.
    public var flags: Flags
    /// The stream offset of the first data byte (or of the end, if there is no data).
    public var dataOffset: UInt64
    /// Every peer frame with an index below this is resolved by the sender.
    public var cumulativeAck: UInt64
    /// Peer frames above ``cumulativeAck`` the sender also holds (at most ``Frame/maxSackRanges``,
    /// and as many as fit in the box).
    public var sackRanges: [IndexRange]
    /// The stream data carried.
    public var data: [UInt8]

    /// Creates a frame.
    public init(index: UInt64, flags: Flags = [], dataOffset: UInt64, cumulativeAck: UInt64 = 0, sackRanges: [IndexRange] = [], data: [UInt8] = []) {
        self.index = index
        self.flags = flags
        self.dataOffset = dataOffset
        self.cumulativeAck = cumulativeAck
        self.sackRanges = sackRanges
        self.data = data
    }

    /// The current frame format version.
    public static let version: UInt8 = 1
    /// The most selective-acknowledgement ranges a frame carries (its count is one byte; the
    /// box size limits it further, see ``sackCapacity(plaintextSize:)``).
    public static let maxSackRanges = 255
    /// The most SACK ranges a frame that carries data spends of its room.
    public static let maxSackRangesWithData = 8
    /// Header bytes without SACK ranges: version, flags, index, offset, ack, SACK count, data length.
    static let fixedHeaderSize = 1 + 1 + 8 + 8 + 8 + 1 + 2
    /// Bytes per SACK range: start (8) and count (4).
    static let sackRangeSize = 12

    /// How many data bytes fit in a plaintext of `plaintextSize` bytes with `sackCount` ranges.
    public static func dataCapacity(plaintextSize: Int, sackCount: Int) -> Int {
        max(0, min(Int(UInt16.max), plaintextSize - fixedHeaderSize - sackCount * sackRangeSize))
    }

    /// How many SACK ranges fit in a frame without data in a plaintext of `plaintextSize` bytes.
    public static func sackCapacity(plaintextSize: Int) -> Int {
        max(0, min(maxSackRanges, (plaintextSize - fixedHeaderSize) / sackRangeSize))
    }

    /// Encodes the frame, zero-padded to exactly `plaintextSize` bytes.
    ///
    /// - Precondition: the data fits (see ``dataCapacity(plaintextSize:sackCount:)``).
    public func encode(plaintextSize: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: plaintextSize) { buffer, initialized in
            encode(into: UnsafeMutableRawBufferPointer(buffer), data: data[...])
            initialized = plaintextSize
        }
    }

    /// Encodes the frame's header with `data` in place of ``data`` (which is ignored) into
    /// `plaintext`, zero-padding it to its whole size, which is the plaintext size: a sender
    /// frames bytes straight from its buffer without copying them out first.
    func encode(into plaintext: UnsafeMutableRawBufferPointer, data: ArraySlice<UInt8>) {
        encode(into: plaintext, dataCount: data.count) { destination in
            data.withUnsafeBytes { if let source = $0.baseAddress { destination.copyMemory(from: source, byteCount: $0.count) } }
        }
    }

    /// Encodes the frame's header with `dataCount` bytes that `writeData` copies to the memory
    /// it is given in place of ``data`` (which is ignored) into `plaintext`, zero-padding it to
    /// its whole size, which is the plaintext size.
    func encode(into plaintext: UnsafeMutableRawBufferPointer, dataCount: Int, writingData writeData: (UnsafeMutableRawPointer) -> Void) {
        precondition(sackRanges.count <= Self.maxSackRanges)
        precondition(dataCount >= 0 && dataCount <= Self.dataCapacity(plaintextSize: plaintext.count, sackCount: sackRanges.count))
        var position = 0
        func put<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.bigEndian) { plaintext.baseAddress!.advanced(by: position).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            position += MemoryLayout<T>.size
        }
        put(Self.version)
        put(flags.rawValue)
        put(index)
        put(dataOffset)
        put(cumulativeAck)
        put(UInt8(sackRanges.count))
        for range in sackRanges {
            put(range.start)
            put(range.count)
        }
        put(UInt16(dataCount))
        if dataCount > 0 { writeData(plaintext.baseAddress! + position) }
        position += dataCount
        (plaintext.baseAddress! + position).initializeMemory(as: UInt8.self, repeating: 0, count: plaintext.count - position)
    }

    /// Decodes a frame from a padded plaintext, checking every field.
    ///
    /// The frame's data reuses the plaintext's storage when the caller gives up its last
    /// reference (the data is moved to the front and the rest cut off): no array is allocated.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/protocolViolation`` for anything malformed.
    public static func decode(_ plaintext: consuming [UInt8]) throws(StreamError) -> Frame {
        let header = try decodeHeader(plaintext)
        plaintext.removeSubrange((header.dataStart + header.dataLength)...)
        plaintext.removeSubrange(..<header.dataStart)
        var frame = header.frame
        frame.data = plaintext
        return frame
    }

    /// Decodes and checks everything but the data of a padded plaintext: the frame without
    /// its data, and where the data lies.
    static func decodeHeader(_ plaintext: [UInt8]) throws(StreamError) -> (frame: Frame, dataStart: Int, dataLength: Int) {
        var reader = ByteReader(plaintext)
        func fail(_ why: String) -> StreamError { StreamError(.protocolViolation, "malformed frame: \(why)") }
        guard let version = reader.readByte() else { throw fail("empty") }
        guard version == Self.version else { throw fail("unsupported frame version \(version)") }
        guard let flagByte = reader.readByte(), let index = reader.readUInt64(), let offset = reader.readUInt64(),
              let ack = reader.readUInt64(), let sackCount = reader.readByte()
        else { throw fail("truncated header") }
        let flags = Flags(rawValue: flagByte)
        guard Flags.known.isSuperset(of: flags) else { throw fail("unknown flags") }
        guard Int(sackCount) <= maxSackRanges else { throw fail("too many SACK ranges") }
        var ranges: [IndexRange] = []
        ranges.reserveCapacity(Int(sackCount))
        for _ in 0..<sackCount {
            guard let start = reader.readUInt64(), let count = reader.readUInt32() else { throw fail("truncated SACK range") }
            guard count > 0, start > ack, start.addingReportingOverflow(UInt64(count)).overflow == false else {
                throw fail("invalid SACK range")
            }
            if let last = ranges.last, start <= last.end { throw fail("SACK ranges out of order") }
            ranges.append(IndexRange(start: start, count: count))
        }
        guard let length = reader.readUInt16() else { throw fail("truncated length") }
        guard Int(length) <= reader.remaining else { throw fail("data length exceeds the frame") }
        let dataStart = reader.position
        reader.skip(Int(length))
        guard reader.restIsZero() else { throw fail("non-zero padding") }
        guard offset.addingReportingOverflow(UInt64(length)).overflow == false else { throw fail("offset overflow") }
        let frame = Frame(index: index, flags: flags, dataOffset: offset, cumulativeAck: ack, sackRanges: ranges)
        return (frame, dataStart, Int(length))
    }
}

extension [UInt8] {
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.bigEndian) { append(contentsOf: $0) }
    }
}

/// A bounds-checked cursor over bytes.
struct ByteReader {
    private let bytes: [UInt8]
    private(set) var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - position }

    mutating func readByte() -> UInt8? {
        guard position < bytes.count else { return nil }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func readInteger<T: FixedWidthInteger>(_: T.Type) -> T? {
        let size = MemoryLayout<T>.size
        guard remaining >= size else { return nil }
        var value: T = 0
        for i in 0..<size { value = value << 8 | T(bytes[position + i]) }
        position += size
        return value
    }

    mutating func readUInt16() -> UInt16? { readInteger(UInt16.self) }
    mutating func readUInt32() -> UInt32? { readInteger(UInt32.self) }
    mutating func readUInt64() -> UInt64? { readInteger(UInt64.self) }

    /// Moves past `count` bytes, which must remain.
    mutating func skip(_ count: Int) {
        precondition(count <= remaining)
        position += count
    }

    func restIsZero() -> Bool {
        bytes.withUnsafeBytes { raw in
            // One OR over the padding (vectorized), not a test per byte.
            var any: UInt8 = 0
            for i in position..<raw.count { any |= raw[i] }
            return any == 0
        }
    }
}
