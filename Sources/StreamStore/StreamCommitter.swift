/// Applies a ``CommitBatch`` in one transaction.
struct StreamCommitter {
    let connection: SQLiteConnection

    private static let insertStream =
        "INSERT INTO streams(name, metadata, checkpoint, checkpoint_sequence) VALUES(?1, ?2, ?3, ?4)"
    private static let insertRecord = "INSERT INTO journal(stream_id, sequence, bytes) VALUES(?1, ?2, ?3)"
    private static let updateCheckpoint =
        "UPDATE streams SET checkpoint = ?2, checkpoint_sequence = ?3, index_snapshot = ?4 WHERE id = ?1"
    private static let deleteRecords = "DELETE FROM journal WHERE stream_id = ?1 AND sequence <= ?2"
    private static let updateMetadata = "UPDATE streams SET metadata = ?2 WHERE id = ?1"
    private static let updateQuarantine = "UPDATE streams SET quarantine = ?2 WHERE id = ?1"
    private static let deleteStream = "DELETE FROM streams WHERE id = ?1"

    /// Checks the batch against the store's limits before anything is written.
    static func validate(_ batch: CommitBatch) throws(StreamStoreError) {
        func blob(_ bytes: [UInt8]?, _ what: String) throws(StreamStoreError) {
            guard let bytes, bytes.count > StoreLimits.maximumBlobSize else { return }
            throw StreamStoreError(.misuse, "\(what) of \(bytes.count) bytes exceeds the \(StoreLimits.maximumBlobSize)-byte limit")
        }
        func sequence(_ value: UInt64) throws(StreamStoreError) {
            guard value > UInt64(Int64.max) else { return }
            throw StreamStoreError(.misuse, "sequence \(value) is above Int64.max")
        }
        for stream in batch.created {
            guard !stream.name.isEmpty, stream.name.utf8.count <= StoreLimits.maximumNameSize else {
                throw StreamStoreError(.misuse, "a stream name must have 1...\(StoreLimits.maximumNameSize) UTF-8 bytes")
            }
            try blob(stream.metadata, "metadata")
            try blob(stream.checkpoint, "checkpoint")
            try sequence(stream.checkpointSequence)
        }
        for (_, rows) in batch.appended {
            for row in rows {
                try sequence(row.sequence)
                try blob(row.bytes, "journal record")
            }
        }
        for entry in batch.checkpoints {
            try sequence(entry.sequence)
            try blob(entry.checkpoint, "checkpoint")
            try blob(entry.indexSnapshot, "index snapshot")
        }
        for (_, metadata) in batch.metadataUpdates { try blob(metadata, "metadata") }
        for entry in batch.quarantined where entry.reason.utf8.count > StoreLimits.maximumReasonSize {
            throw StreamStoreError(.misuse, "a quarantine reason may have at most \(StoreLimits.maximumReasonSize) bytes")
        }
    }

    /// Writes the batch inside an open transaction; returns the ids of the created streams.
    func apply(_ batch: CommitBatch) throws(StreamStoreError) -> [StoredStreamID] {
        var ids: [StoredStreamID] = []
        ids.reserveCapacity(batch.created.count)
        let insert = try connection.prepared(Self.insertStream)
        for stream in batch.created {
            try insert.bind(1, stream.name)
            try insert.bind(2, stream.metadata)
            try insert.bind(3, stream.checkpoint)
            try insert.bind(4, Int64(stream.checkpointSequence))
            try insert.run()
            ids.append(StoredStreamID(rawValue: connection.lastInsertRowID))
        }
        let append = try connection.prepared(Self.insertRecord)
        for (id, rows) in batch.appended {
            for row in rows {
                try append.bind(1, id.rawValue)
                try append.bind(2, Int64(row.sequence))
                try append.bind(3, row.bytes)
                try append.run()
            }
        }
        let checkpoint = try connection.prepared(Self.updateCheckpoint)
        let compact = try connection.prepared(Self.deleteRecords)
        for entry in batch.checkpoints {
            try checkpoint.bind(1, entry.0.rawValue)
            try checkpoint.bind(2, entry.checkpoint)
            try checkpoint.bind(3, Int64(entry.sequence))
            try checkpoint.bind(4, entry.indexSnapshot)
            try runChanging(checkpoint, entry.0)
            try compact.bind(1, entry.0.rawValue)
            try compact.bind(2, Int64(entry.sequence))
            try compact.run()
        }
        let metadata = try connection.prepared(Self.updateMetadata)
        for (id, bytes) in batch.metadataUpdates {
            try metadata.bind(1, id.rawValue)
            try metadata.bind(2, bytes)
            try runChanging(metadata, id)
        }
        let quarantine = try connection.prepared(Self.updateQuarantine)
        for entry in batch.quarantined {
            try quarantine.bind(1, entry.0.rawValue)
            try quarantine.bind(2, entry.reason)
            try runChanging(quarantine, entry.0)
        }
        let remove = try connection.prepared(Self.deleteStream)
        for id in batch.removed {
            try remove.bind(1, id.rawValue)
            try runChanging(remove, id)
        }
        return ids
    }

    /// Runs a statement that must change exactly the row of `id`.
    private func runChanging(_ statement: SQLiteStatement, _ id: StoredStreamID) throws(StreamStoreError) {
        try statement.run()
        guard connection.changes > 0 else {
            throw StreamStoreError(.unknownStream, "\(id) is not stored in \(connection.path)")
        }
    }
}
