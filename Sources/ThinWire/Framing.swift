import CBOR

/// Length-prefixed framing of the thin-client protocol.
///
/// Each frame is a 4-byte big-endian unsigned length followed by exactly that many bytes
/// holding one CBOR data item. There is no other header. Frames longer than
/// ``maximumLength`` (40 MiB) are rejected by both sides.
public enum ThinFrame {
    /// The largest frame body either side accepts: 40 MiB (41 943 040 bytes).
    public static let maximumLength = 41_943_040

    /// The size of the length prefix in bytes.
    public static let prefixLength = 4

    /// Encodes `value` as one complete frame (prefix plus CBOR body).
    ///
    /// - Precondition: the encoded body is at most ``maximumLength`` bytes.
    public static func encode(_ value: CBORValue) -> [UInt8] {
        var frame: [UInt8] = [0, 0, 0, 0]
        WireCBOR.encode(value, into: &frame)
        let length = frame.count - prefixLength
        precondition(length <= maximumLength, "thin frame body of \(length) bytes exceeds the 40 MiB cap")
        writeLength(length, into: &frame, at: 0)
        return frame
    }

    /// Encodes `message` (a one-key map) as one complete frame.
    public static func encode(_ message: ThinMessage) -> [UInt8] {
        encode(message.value)
    }

    /// Prepends the 4-byte big-endian length prefix to an already encoded CBOR body.
    ///
    /// - Throws: ``ThinWireError/Code-swift.struct/frameTooLarge`` if `body` exceeds ``maximumLength``.
    public static func frame(body: [UInt8]) throws(ThinWireError) -> [UInt8] {
        guard body.count <= maximumLength else {
            throw ThinWireError(.frameTooLarge, "frame body of \(body.count) bytes exceeds the cap of \(maximumLength)")
        }
        var frame: [UInt8] = [0, 0, 0, 0]
        frame.reserveCapacity(body.count + prefixLength)
        writeLength(body.count, into: &frame, at: 0)
        frame.append(contentsOf: body)
        return frame
    }

    /// Decodes one frame body (without its prefix) into a CBOR value.
    ///
    /// - Throws: ``ThinWireError/Code-swift.struct/invalidCBOR`` if the body is not exactly one data item.
    public static func decodeBody(_ body: [UInt8]) throws(ThinWireError) -> CBORValue {
        try WireCBOR.decode(body)
    }

    private static func writeLength(_ length: Int, into buffer: inout [UInt8], at index: Int) {
        let n = UInt32(length)
        buffer[index] = UInt8(truncatingIfNeeded: n >> 24)
        buffer[index + 1] = UInt8(truncatingIfNeeded: n >> 16)
        buffer[index + 2] = UInt8(truncatingIfNeeded: n >> 8)
        buffer[index + 3] = UInt8(truncatingIfNeeded: n)
    }
}

/// An incremental decoder of thin-client frames: feed bytes as they arrive, pop complete frames.
///
/// The length prefix is checked against the cap as soon as its 4 bytes are buffered, before any
/// room is reserved for the body, so a hostile prefix cannot cause a large allocation. Once the
/// decoder has thrown, it stays failed: every later call throws the same error, because the
/// stream can no longer be resynchronised (the peer must be disconnected).
///
/// ```swift
/// var decoder = ThinFrameDecoder()
/// decoder.append(bytesFromSocket)
/// while let value = try decoder.nextValue() { handle(value) }
/// ```
public struct ThinFrameDecoder: Sendable {
    /// The largest accepted frame body.
    public let maximumFrameLength: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: ThinWireError?

    /// Creates a decoder.
    ///
    /// - Parameter maximumFrameLength: the largest accepted body; at most ``ThinFrame/maximumLength``.
    public init(maximumFrameLength: Int = ThinFrame.maximumLength) {
        self.maximumFrameLength = min(max(0, maximumFrameLength), ThinFrame.maximumLength)
    }

    /// The number of received bytes not yet returned as frames.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// The bytes of memory the buffer currently holds (its capacity), which grows with the
    /// bytes actually received, never with a frame's declared length.
    public var bufferCapacity: Int { buffer.capacity }

    /// Appends bytes received from the peer.
    ///
    /// Call ``nextFrameBody()`` or ``nextValue()`` until it returns `nil` after every append; the
    /// buffer then never holds more than one incomplete frame plus the latest read.
    public mutating func append<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        guard failure == nil else { return }
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Pops the next complete frame body, or returns `nil` if more bytes are needed.
    ///
    /// - Throws: ``ThinWireError/Code-swift.struct/frameTooLarge`` as soon as an oversized prefix is seen.
    public mutating func nextFrameBody() throws(ThinWireError) -> [UInt8]? {
        if let failure { throw failure }
        guard bufferedByteCount >= ThinFrame.prefixLength else { return nil }
        var length = 0
        for i in 0..<ThinFrame.prefixLength { length = length << 8 | Int(buffer[readIndex + i]) }
        guard length <= maximumFrameLength else {
            let error = ThinWireError(.frameTooLarge, "frame length \(length) exceeds the cap of \(maximumFrameLength)")
            fail(error)
            throw error
        }
        guard bufferedByteCount - ThinFrame.prefixLength >= length else { return nil }
        let start = readIndex + ThinFrame.prefixLength
        let body = Array(buffer[start..<(start + length)])
        readIndex = start + length
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 20)
            readIndex = 0
        }
        return body
    }

    /// Pops and decodes the next complete frame, or returns `nil` if more bytes are needed.
    ///
    /// - Throws: ``ThinWireError/Code-swift.struct/frameTooLarge`` or
    ///   ``ThinWireError/Code-swift.struct/invalidCBOR``.
    public mutating func nextValue() throws(ThinWireError) -> CBORValue? {
        guard let body = try nextFrameBody() else { return nil }
        do {
            return try ThinFrame.decodeBody(body)
        } catch {
            fail(error)
            throw error
        }
    }

    private mutating func fail(_ error: ThinWireError) {
        failure = error
        buffer = []
        readIndex = 0
    }
}
