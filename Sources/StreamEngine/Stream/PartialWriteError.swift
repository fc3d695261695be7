/// The error of a ``Stream/write(_:)`` that stopped after the stream had accepted part of the bytes.
///
/// The first ``acceptedCount`` bytes belong to the stream like those of a successful write:
/// it sends them (some may already have reached the peer) unless it fails or is halted, and
/// their durability was not confirmed. The rest were not accepted: write them again to send them.
public struct PartialWriteError: Error, Sendable, CustomStringConvertible {
    /// How many bytes, from the start of the buffer passed to `write`, the stream accepted.
    public var acceptedCount: Int
    /// How many bytes the write was given.
    public var requestedCount: Int
    /// Why the write stopped: `CancellationError`, or a ``StreamError`` (the stream failed,
    /// was closed or halted).
    public var underlying: any Error

    /// Creates the error of a write of `requestedCount` bytes that stopped after `acceptedCount`.
    public init(acceptedCount: Int, of requestedCount: Int, underlying: any Error) {
        self.acceptedCount = acceptedCount
        self.requestedCount = requestedCount
        self.underlying = underlying
    }

    public var description: String {
        "the write stopped after the stream accepted \(acceptedCount) of \(requestedCount) bytes: \(underlying)"
    }
}
