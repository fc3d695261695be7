import CBOR

/// Sends and receives whole CBOR values over a ``Stream``.
///
/// CBOR items delimit themselves, so values are written back to back with no extra framing;
/// bytes read past one value are kept for the next, so nothing is lost between values. A value
/// larger than ``maxMessageSize`` or malformed CBOR is a
/// ``StreamError/Code-swift.struct/protocolViolation``.
public actor CBORMessageStream {
    /// The underlying byte stream.
    public let stream: Stream
    /// The largest encoded value accepted.
    public let maxMessageSize: Int
    private let limits: CBORDecoder.Limits
    private var buffer: [UInt8] = []

    /// Wraps a stream.
    public init(_ stream: Stream, maxMessageSize: Int = 1 << 20, limits: CBORDecoder.Limits = .init()) {
        self.stream = stream
        self.maxMessageSize = maxMessageSize
        self.limits = limits
    }

    /// Sends one value; returns once the stream has accepted it durably.
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
            if !buffer.isEmpty {
                do {
                    let (value, consumed) = try CBORDecoder.decodePrefix(buffer, limits: limits)
                    buffer.removeFirst(consumed)
                    return value
                } catch where error.isTruncation && buffer.count < maxMessageSize {
                    // Wait for more bytes.
                } catch where error.isTruncation {
                    throw StreamError(.protocolViolation, "a message exceeds the \(maxMessageSize)-byte limit")
                } catch {
                    throw StreamError(.protocolViolation, "malformed CBOR message: \(error.message)")
                }
            }
            guard let chunk = try await stream.read(maxLength: max(1, maxMessageSize - buffer.count)) else {
                if buffer.isEmpty { return nil }
                throw StreamError(.protocolViolation, "the stream ended inside a message")
            }
            buffer += chunk
        }
    }
}
