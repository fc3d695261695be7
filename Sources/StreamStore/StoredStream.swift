/// The row id of a stored stream; stable for the stream's lifetime, never reused while it exists.
public struct StoredStreamID: Hashable, Sendable, CustomStringConvertible {
    /// SQLite's row id.
    public let rawValue: Int64

    /// Wraps a row id.
    public init(rawValue: Int64) { self.rawValue = rawValue }

    public var description: String { "stream#\(rawValue)" }
}

/// One journal record of a stream: an opaque blob at a sequence number.
public struct StreamRecordRow: Sendable, Hashable {
    /// The record's sequence number, unique within its stream and at most `Int64.max`.
    public var sequence: UInt64
    /// The opaque record.
    public var bytes: [UInt8]

    /// Creates a row.
    public init(sequence: UInt64, bytes: [UInt8]) {
        self.sequence = sequence
        self.bytes = bytes
    }
}

/// Everything stored for one stream, as loaded at startup.
///
/// The blobs are opaque to the store; they hold stream keys and addresses, so never log them.
public struct StoredStream: Sendable {
    /// The stream's row id.
    public var id: StoredStreamID
    /// The stream's unique name (empty if it could not be read; see ``quarantine``).
    public var name: String
    /// Opaque metadata (role, mode, address secret…), written at creation and updatable.
    public var metadata: [UInt8]
    /// The latest compacted checkpoint.
    public var checkpoint: [UInt8]
    /// The sequence number the checkpoint covers.
    public var checkpointSequence: UInt64
    /// The transport index cache stored next to the checkpoint, if any.
    public var indexSnapshot: [UInt8]?
    /// The records with a sequence above ``checkpointSequence``, ascending.
    public var journal: [StreamRecordRow]
    /// Why the stream is marked damaged, if it is; other fields may then be empty.
    public var quarantine: String?

    /// Creates a loaded stream.
    public init(
        id: StoredStreamID, name: String, metadata: [UInt8], checkpoint: [UInt8], checkpointSequence: UInt64,
        indexSnapshot: [UInt8]?, journal: [StreamRecordRow], quarantine: String?
    ) {
        self.id = id
        self.name = name
        self.metadata = metadata
        self.checkpoint = checkpoint
        self.checkpointSequence = checkpointSequence
        self.indexSnapshot = indexSnapshot
        self.journal = journal
        self.quarantine = quarantine
    }
}
