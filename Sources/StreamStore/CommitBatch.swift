/// Changes written together in one SQLite transaction (group commit).
///
/// ``StreamDatabase/commit(_:)`` applies the parts in this order: ``created``, ``appended``,
/// ``checkpoints``, ``metadataUpdates``, ``quarantined``, ``removed``.
public struct CommitBatch: Sendable {
    /// New streams; their ids are returned by ``StreamDatabase/commit(_:)`` in this order.
    public var created: [(name: String, metadata: [UInt8], checkpoint: [UInt8], checkpointSequence: UInt64)]
    /// Journal records to add to existing streams.
    public var appended: [(StoredStreamID, [StreamRecordRow])]
    /// Compactions: replace the checkpoint (and index snapshot) and delete journal rows at or below `sequence`.
    public var checkpoints: [(StoredStreamID, checkpoint: [UInt8], sequence: UInt64, indexSnapshot: [UInt8]?)]
    /// Replacement metadata blobs.
    public var metadataUpdates: [(StoredStreamID, [UInt8])]
    /// Streams to mark damaged, with the reason (must not contain secrets).
    public var quarantined: [(StoredStreamID, reason: String)]
    /// Streams to delete with their journals.
    public var removed: [StoredStreamID]

    /// Creates a batch; every part defaults to empty.
    public init(
        created: [(name: String, metadata: [UInt8], checkpoint: [UInt8], checkpointSequence: UInt64)] = [],
        appended: [(StoredStreamID, [StreamRecordRow])] = [],
        checkpoints: [(StoredStreamID, checkpoint: [UInt8], sequence: UInt64, indexSnapshot: [UInt8]?)] = [],
        metadataUpdates: [(StoredStreamID, [UInt8])] = [],
        quarantined: [(StoredStreamID, reason: String)] = [],
        removed: [StoredStreamID] = []
    ) {
        self.created = created
        self.appended = appended
        self.checkpoints = checkpoints
        self.metadataUpdates = metadataUpdates
        self.quarantined = quarantined
        self.removed = removed
    }

    /// True when the batch changes nothing (committing it is a no-op).
    public var isEmpty: Bool {
        created.isEmpty && appended.allSatisfy { $0.1.isEmpty } && checkpoints.isEmpty && metadataUpdates.isEmpty
            && quarantined.isEmpty && removed.isEmpty
    }
}
