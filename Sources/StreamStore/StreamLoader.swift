import CSQLite

/// Reads streams back, one at a time, so that a damaged row only quarantines its own stream.
struct StreamLoader {
    let connection: SQLiteConnection

    private static let selectIDs = "SELECT id FROM streams ORDER BY id"
    private static let selectStream = """
        SELECT CASE WHEN length(name) <= ?2 THEN name END, length(name),
               length(metadata), CASE WHEN length(metadata) <= ?3 THEN metadata END, typeof(metadata),
               length(checkpoint), CASE WHEN length(checkpoint) <= ?3 THEN checkpoint END, typeof(checkpoint),
               checkpoint_sequence, typeof(checkpoint_sequence),
               length(index_snapshot), CASE WHEN length(index_snapshot) <= ?3 THEN index_snapshot END,
               typeof(index_snapshot),
               CASE WHEN length(quarantine) <= ?4 THEN quarantine END, length(quarantine)
        FROM streams WHERE id = ?1
        """
    private static let selectJournal = """
        SELECT sequence, length(bytes), CASE WHEN length(bytes) <= ?3 THEN bytes END, typeof(bytes)
        FROM journal WHERE stream_id = ?1 AND sequence > ?2 ORDER BY sequence
        """

    /// Every stream; a stream that cannot be read comes back with ``StoredStream/quarantine`` set.
    func loadAll() throws(StreamStoreError) -> [StoredStream] {
        let statement = try connection.prepared(Self.selectIDs)
        defer { statement.reset() }
        var ids: [Int64] = []
        while try statement.step() { ids.append(statement.int64(0)) }
        statement.reset()
        var streams: [StoredStream] = []
        streams.reserveCapacity(ids.count)
        for id in ids { streams.append(load(id)) }
        return streams
    }

    private func load(_ id: Int64) -> StoredStream {
        var stream = StoredStream(
            id: StoredStreamID(rawValue: id), name: "", metadata: [], checkpoint: [], checkpointSequence: 0,
            indexSnapshot: nil, journal: [], quarantine: nil)
        do throws(StreamStoreError) {
            try readRow(into: &stream)
            try readJournal(into: &stream)
        } catch {
            let previous = stream.quarantine.map { "\($0); " } ?? ""
            stream.metadata = []
            stream.checkpoint = []
            stream.indexSnapshot = nil
            stream.journal = []
            stream.quarantine = previous + "unreadable: \(error.message)"
        }
        return stream
    }

    private func readRow(into stream: inout StoredStream) throws(StreamStoreError) {
        let statement = try connection.prepared(Self.selectStream)
        defer { statement.reset() }
        try statement.bind(1, stream.id.rawValue)
        try statement.bind(2, Int64(StoreLimits.maximumNameSize))
        try statement.bind(3, Int64(StoreLimits.maximumBlobSize))
        try statement.bind(4, Int64(StoreLimits.maximumReasonSize))
        guard try statement.step() else { throw corrupt(stream, "the row vanished while loading") }
        if statement.int64(14) > StoreLimits.maximumReasonSize {
            stream.quarantine = "quarantine reason too long"
        } else {
            stream.quarantine = statement.text(13)
        }
        guard let name = statement.text(0) else { throw corrupt(stream, "name of \(statement.int64(1)) characters is too long") }
        stream.name = name
        stream.metadata = try blob(statement, length: 2, value: 3, type: 4, "metadata", stream)
        stream.checkpoint = try blob(statement, length: 5, value: 6, type: 7, "checkpoint", stream)
        let sequence = statement.int64(8)
        guard statement.text(9) == "integer", sequence >= 0 else {
            throw corrupt(stream, "checkpoint sequence is not a non-negative integer")
        }
        stream.checkpointSequence = UInt64(sequence)
        if statement.text(12) != "null" {
            stream.indexSnapshot = try blob(statement, length: 10, value: 11, type: 12, "index snapshot", stream)
        }
    }

    private func readJournal(into stream: inout StoredStream) throws(StreamStoreError) {
        let statement = try connection.prepared(Self.selectJournal)
        defer { statement.reset() }
        try statement.bind(1, stream.id.rawValue)
        try statement.bind(2, Int64(stream.checkpointSequence))
        try statement.bind(3, Int64(StoreLimits.maximumBlobSize))
        var total = 0
        var rows: [StreamRecordRow] = []
        while try statement.step() {
            guard rows.count < StoreLimits.maximumJournalRows else {
                throw corrupt(stream, "more than \(StoreLimits.maximumJournalRows) journal rows")
            }
            let bytes = try blob(statement, length: 1, value: 2, type: 3, "journal record", stream)
            total += bytes.count
            guard total <= StoreLimits.maximumJournalBytes else {
                throw corrupt(stream, "journal larger than \(StoreLimits.maximumJournalBytes) bytes")
            }
            rows.append(StreamRecordRow(sequence: UInt64(statement.int64(0)), bytes: bytes))
        }
        stream.journal = rows
    }

    private func blob(
        _ statement: SQLiteStatement, length: Int32, value: Int32, type: Int32, _ what: String, _ stream: StoredStream
    ) throws(StreamStoreError) -> [UInt8] {
        guard statement.text(type) == "blob" else { throw corrupt(stream, "\(what) is not a blob") }
        let size = statement.int64(length)
        guard size <= StoreLimits.maximumBlobSize, !statement.isNull(value) else {
            throw corrupt(stream, "\(what) of \(size) bytes exceeds the \(StoreLimits.maximumBlobSize)-byte limit")
        }
        return statement.blob(value)
    }

    private func corrupt(_ stream: StoredStream, _ what: String) -> StreamStoreError {
        StreamStoreError(.corrupt, "\(stream.id) in \(connection.path): \(what)")
    }
}
