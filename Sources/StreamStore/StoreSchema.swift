/// The database schema and its versioning (`PRAGMA user_version`).
enum StoreSchema {
    /// The schema version this code writes and reads.
    static let version: Int64 = 1
    /// `PRAGMA application_id` marking a streamd store ("strd").
    static let applicationID: Int64 = 0x7374_7264

    /// Sets the connection's pragmas, then creates or checks the schema.
    static func prepare(_ connection: SQLiteConnection) throws(StreamStoreError) {
        let mode = try connection.queryText("PRAGMA journal_mode=WAL")
        guard mode?.lowercased() == "wal" else {
            throw StreamStoreError(.cannotOpen, "\(connection.path) cannot use WAL journaling (got \(mode ?? "nothing"))")
        }
        try connection.execute("PRAGMA synchronous=FULL")
        try connection.execute("PRAGMA foreign_keys=ON")
        // Deleted keys are overwritten instead of lingering in free pages.
        try connection.execute("PRAGMA secure_delete=ON")
        try connection.execute("PRAGMA trusted_schema=OFF")
        try connection.execute("PRAGMA cell_size_check=ON")
        try connection.execute("PRAGMA journal_size_limit=67108864")

        let found = try connection.queryInt("PRAGMA user_version") ?? 0
        let application = try connection.queryInt("PRAGMA application_id") ?? 0
        if found > version {
            throw StreamStoreError(
                .schemaTooNew, "\(connection.path) has schema version \(found); this streamd knows up to \(version)")
        }
        if application != 0 && application != applicationID {
            throw StreamStoreError(.cannotOpen, "\(connection.path) is not a streamd store (application_id \(application))")
        }
        if found == version { return }
        try connection.execute("BEGIN IMMEDIATE")
        do {
            try connection.execute(
                """
                CREATE TABLE streams(
                    id INTEGER PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    metadata BLOB NOT NULL,
                    checkpoint BLOB NOT NULL,
                    checkpoint_sequence INTEGER NOT NULL,
                    index_snapshot BLOB,
                    quarantine TEXT
                ) STRICT;
                CREATE TABLE journal(
                    stream_id INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
                    sequence INTEGER NOT NULL,
                    bytes BLOB NOT NULL,
                    PRIMARY KEY(stream_id, sequence)
                ) STRICT, WITHOUT ROWID;
                PRAGMA application_id=\(applicationID);
                PRAGMA user_version=\(version);
                """)
            try connection.execute("COMMIT")
        } catch {
            if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
            throw error
        }
    }
}
