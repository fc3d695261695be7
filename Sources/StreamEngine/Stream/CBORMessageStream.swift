import CBOR

/// Sends and receives whole CBOR values over a ``Stream``.
///
/// CBOR items delimit themselves, so values are written back to back with no extra framing;
/// bytes read past one value are kept for the next, so nothing is lost between values. A value
/// larger than ``maxMessageSize`` or malformed CBOR is a
/// ``StreamError/Code-swift.struct/protocolViolation``.
///
/// Receiving is resumable: a value that arrives in many chunks is scanned once, head by head,
/// and decoded once, when its last byte is there, so its cost is linear in its size.
public actor CBORMessageStream {
    /// The underlying byte stream.
    public let stream: Stream
    /// The largest encoded value accepted.
    public let maxMessageSize: Int
    private let limits: CBORDecoder.Limits
    /// Received bytes; the next value starts at `head`.
    private var buffer: [UInt8] = []
    private var head = 0
    /// How far the next value has been scanned.
    private var scanner = CBORItemScanner()

    /// Wraps a stream.
    public init(_ stream: Stream, maxMessageSize: Int = 1 << 20, limits: CBORDecoder.Limits = .init()) {
        self.stream = stream
        self.maxMessageSize = maxMessageSize
        self.limits = limits
    }

    /// Sends one value; returns once the stream has accepted it durably.
    ///
    /// - Throws: ``PartialWriteError`` if the stream accepted only part of the value (the
    ///   peer then sees a truncated message: close the stream), or the stream's error.
    public func send(_ value: CBORValue) async throws {
        let bytes = value.encoded()
        guard bytes.count <= maxMessageSize else {
            throw StreamError(.protocolViolation, "message of \(bytes.count) bytes exceeds the \(maxMessageSize)-byte limit")
        }
        try await stream.write(bytes)
    }

    /// Receives the next value, waiting for its bytes.
    ///
    /// - Returns: the value, or `nil` if the peer closed the stream between values.
    public func receive() async throws -> CBORValue? {
        while true {
            if head < buffer.count {
                switch scanner.scan(buffer[head...], limit: maxMessageSize, maxDepth: limits.maxDepth) {
                case .complete(let length):
                    let value: CBORValue
                    do {
                        value = try CBORDecoder.decode(buffer[head..<head + length], limits: limits)
                    } catch {
                        throw StreamError(.protocolViolation, "malformed CBOR message: \(error.message)")
                    }
                    head += length
                    scanner = CBORItemScanner()
                    if head == buffer.count {
                        buffer.removeAll(keepingCapacity: true)
                        head = 0
                    }
                    return value
                case .incomplete:
                    break
                case .tooLarge:
                    throw StreamError(.protocolViolation, "a message exceeds the \(maxMessageSize)-byte limit")
                case .malformed:
                    throw malformed()
                }
            }
            let unread = buffer.count - head
            guard unread < maxMessageSize else {
                throw StreamError(.protocolViolation, "a message exceeds the \(maxMessageSize)-byte limit")
            }
            guard let chunk = try await stream.read(maxLength: maxMessageSize - unread) else {
                if unread == 0 { return nil }
                throw StreamError(.protocolViolation, "the stream ended inside a message")
            }
            if head > 0 {
                // Drop the values already returned: at most once per value, and only the
                // unread rest (less than one message) moves.
                buffer.removeFirst(head)
                head = 0
            }
            buffer += chunk
        }
    }

    /// The error for bytes the scanner rejects, with the decoder's explanation.
    private func malformed() -> StreamError {
        do {
            _ = try CBORDecoder.decodePrefix(buffer[head...], limits: limits)
        } catch {
            return StreamError(.protocolViolation, "malformed CBOR message: \(error.message)")
        }
        return StreamError(.protocolViolation, "malformed CBOR message")
    }
}
