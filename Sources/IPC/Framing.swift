/// The app protocol's framing: a 4-byte big-endian payload length, then the payload (one CBOR map).
public enum IPCFraming {
    /// The size of the length prefix in bytes.
    public static let prefixLength = 4

    /// Prepends the 4-byte big-endian length prefix to `payload`.
    ///
    /// Receivers reject payloads over ``IPCLimits/maxFrameSize``; the sender must keep within it.
    ///
    /// - Precondition: `payload.count` fits in 32 bits.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var frame = startFrame(payloadLength: payload.count)
        frame.append(contentsOf: payload)
        return frame
    }

    /// A frame's length prefix for a payload of `payloadLength` bytes, with room reserved for
    /// the payload, which the caller appends.
    ///
    /// - Precondition: `payloadLength` fits in 32 bits.
    static func startFrame(payloadLength: Int) -> [UInt8] {
        precondition(payloadLength <= Int(UInt32.max), "IPC payload of \(payloadLength) bytes cannot be framed")
        let length = UInt32(payloadLength)
        var frame: [UInt8] = []
        frame.reserveCapacity(prefixLength + payloadLength)
        frame.append(UInt8(truncatingIfNeeded: length >> 24))
        frame.append(UInt8(truncatingIfNeeded: length >> 16))
        frame.append(UInt8(truncatingIfNeeded: length >> 8))
        frame.append(UInt8(truncatingIfNeeded: length))
        return frame
    }
}

/// An incremental, pure framer: feed bytes as they arrive, pop complete payloads.
///
/// The length prefix is checked against the cap as soon as its 4 bytes are buffered, before
/// anything is reserved for the payload; the buffer only ever holds bytes that arrived. Once
/// ``nextFrame()`` has thrown, the decoder stays failed: it drops its buffer, ignores further
/// bytes and throws the same error again (the connection cannot be resynchronised).
///
/// ```swift
/// var decoder = IPCFrameDecoder()
/// decoder.append(bytesFromSocket)
/// while let payload = try decoder.nextFrame() { handle(payload) }
/// ```
public struct IPCFrameDecoder: Sendable {
    /// The largest accepted payload.
    public let maxFrameSize: Int

    private var buffer: [UInt8] = []
    private var readIndex = 0
    private var failure: IPCError?

    /// Creates a decoder that accepts payloads of up to `maxFrameSize` bytes.
    public init(maxFrameSize: Int = IPCLimits.maxFrameSize) {
        self.maxFrameSize = max(0, maxFrameSize)
    }

    /// The number of received bytes not yet returned as frames (a server can time out a
    /// connection that keeps a half frame buffered).
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Whether the decoder has failed and will only throw from now on.
    public var hasFailed: Bool { failure != nil }

    /// Appends bytes received from the peer; ignored once the decoder has failed.
    ///
    /// Call ``nextFrame()`` until it returns `nil` after every append: the buffer then holds
    /// at most one incomplete frame plus the latest read.
    public mutating func append(_ bytes: some Collection<UInt8>) {
        guard failure == nil else { return }
        if readIndex > 0 && readIndex >= buffer.count / 2 {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// Pops the next complete payload, or returns `nil` if more bytes are needed.
    ///
    /// - Throws: ``IPCError/Code-swift.struct/frameTooLarge`` as soon as a prefix announces more
    ///   than ``maxFrameSize`` bytes.
    public mutating func nextFrame() throws(IPCError) -> [UInt8]? {
        if let failure { throw failure }
        guard bufferedByteCount >= IPCFraming.prefixLength else { return nil }
        var length = 0
        for index in 0..<IPCFraming.prefixLength {
            length = length << 8 | Int(buffer[readIndex + index])
        }
        guard length <= maxFrameSize else {
            let error = IPCError(.frameTooLarge, "frame of \(length) bytes exceeds the limit of \(maxFrameSize)")
            failure = error
            buffer = []
            readIndex = 0
            throw error
        }
        guard bufferedByteCount - IPCFraming.prefixLength >= length else { return nil }
        let start = readIndex + IPCFraming.prefixLength
        let payload = Array(buffer[start..<(start + length)])
        readIndex = start + length
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 2 * IPCLimits.maxFrameSize)
            readIndex = 0
        }
        return payload
    }
}
