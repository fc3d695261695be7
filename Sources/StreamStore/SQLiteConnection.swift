import CSQLite

/// A SQLite connection with a cache of prepared statements. Not thread-safe: only the store thread uses it.
final class SQLiteConnection {
    /// The database path (for error messages).
    let path: String
    private var handle: OpaquePointer?
    private var statements: [String: SQLiteStatement] = [:]

    /// Opens an existing database file for reading and writing through the VFS named `vfs` (or the default).
    init(path: String, vfs: String?) throws(StreamStoreError) {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE
        let rc = sqlite3_open_v2(path, &db, flags, vfs)
        guard rc == SQLITE_OK, let db else {
            let text = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
            sqlite3_close_v2(db)
            throw SQLiteConnection.makeError(rc, "cannot open the database", text: text, path: path)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
    }

    deinit { close() }

    /// Finalizes every statement and closes the connection (idempotent).
    func close() {
        for statement in statements.values { statement.finalize() }
        statements.removeAll()
        if let handle { sqlite3_close_v2(handle) }
        handle = nil
    }

    /// The open handle, or `.closed`.
    func db() throws(StreamStoreError) -> OpaquePointer {
        guard let handle else { throw StreamStoreError(.closed, "the store at \(path) is closed") }
        return handle
    }

    /// Runs SQL without results (pragmas, schema, transaction control).
    func execute(_ sql: String) throws(StreamStoreError) {
        let db = try db()
        let rc = sqlite3_exec(db, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, "cannot run \(sql.prefix(40))") }
    }

    /// Runs a statement without results that runs again and again (`BEGIN IMMEDIATE`,
    /// `COMMIT`) through a cached prepared statement, so it is parsed once; errors read as
    /// ``execute(_:)``'s.
    func executeCached(_ sql: String) throws(StreamStoreError) {
        let statement = try prepared(sql)
        defer { statement.reset() }
        let rc = statement.stepResult()
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw error(rc, "cannot run \(sql.prefix(40))") }
    }

    /// The first column of the first row of `sql` as text (for pragmas that answer).
    func queryText(_ sql: String) throws(StreamStoreError) -> String? {
        let statement = try prepared(sql)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return statement.text(0)
    }

    /// The first column of the first row of `sql` as an integer.
    func queryInt(_ sql: String) throws(StreamStoreError) -> Int64? {
        let statement = try prepared(sql)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return statement.int64(0)
    }

    /// A cached prepared statement for `sql`, reset and with no bindings.
    func prepared(_ sql: String) throws(StreamStoreError) -> SQLiteStatement {
        if let statement = statements[sql] { return statement }
        let db = try db()
        var pointer: OpaquePointer?
        let rc = sqlite3_prepare_v3(db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &pointer, nil)
        guard rc == SQLITE_OK, let pointer else { throw error(rc, "cannot prepare a statement") }
        let statement = SQLiteStatement(pointer, connection: self)
        statements[sql] = statement
        return statement
    }

    /// True when no transaction is open.
    var isAutocommit: Bool { handle.map { sqlite3_get_autocommit($0) != 0 } ?? true }

    /// Rows changed by the last statement.
    var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

    /// The row id of the last insert.
    var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

    /// Maps a SQLite result code and the connection's error text to a store error.
    func error(_ rc: Int32, _ context: String) -> StreamStoreError {
        let text = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
        return SQLiteConnection.makeError(rc, context, text: text, path: path)
    }

    /// Maps a SQLite result code to a store error naming the path and SQLite's text.
    static func makeError(_ rc: Int32, _ context: String, text: String, path: String) -> StreamStoreError {
        let code: StreamStoreError.Code
        switch rc & 0xff {
        case SQLITE_CANTOPEN: code = .cannotOpen
        case SQLITE_PERM, SQLITE_AUTH: code = .permissions
        case SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_FORMAT: code = .corrupt
        case SQLITE_IOERR, SQLITE_NOLFS: code = .ioFailure
        case SQLITE_FULL: code = .full
        case SQLITE_READONLY: code = .readOnly
        case SQLITE_BUSY, SQLITE_LOCKED: code = .busy
        case SQLITE_MISUSE, SQLITE_RANGE, SQLITE_TOOBIG, SQLITE_MISMATCH: code = .misuse
        case SQLITE_CONSTRAINT:
            switch rc {
            // The extended-code macros are not importable: SQLITE_CONSTRAINT_UNIQUE, _FOREIGNKEY.
            case SQLITE_CONSTRAINT | (8 << 8): code = .duplicateName
            case SQLITE_CONSTRAINT | (3 << 8): code = .unknownStream
            default: code = .constraint
            }
        default: code = .internalError
        }
        return StreamStoreError(code, "\(context) (\(path)): \(text) [sqlite \(rc)]")
    }
}

/// A prepared statement owned by a ``SQLiteConnection``.
final class SQLiteStatement {
    private var pointer: OpaquePointer?
    private unowned let connection: SQLiteConnection

    init(_ pointer: OpaquePointer, connection: SQLiteConnection) {
        self.pointer = pointer
        self.connection = connection
    }

    func finalize() {
        sqlite3_finalize(pointer)
        pointer = nil
    }

    /// Resets the statement and clears its bindings (so blobs are not kept alive).
    func reset() {
        sqlite3_reset(pointer)
        sqlite3_clear_bindings(pointer)
    }

    func bind(_ index: Int32, _ value: Int64) throws(StreamStoreError) {
        try check(sqlite3_bind_int64(pointer, index, value))
    }

    func bind(_ index: Int32, _ text: String) throws(StreamStoreError) {
        try check(sqlite3_bind_text(pointer, index, text, -1, csqlite_transient()))
    }

    /// Binds a blob (an empty one stays a blob, not NULL) or NULL.
    func bind(_ index: Int32, _ bytes: [UInt8]?) throws(StreamStoreError) {
        guard let bytes else { return try check(sqlite3_bind_null(pointer, index)) }
        if bytes.isEmpty { return try check(sqlite3_bind_zeroblob(pointer, index, 0)) }
        let rc = bytes.withUnsafeBytes { raw in
            sqlite3_bind_blob64(pointer, index, raw.baseAddress, sqlite3_uint64(raw.count), csqlite_transient())
        }
        try check(rc)
    }

    /// Steps once: true for a row, false when done.
    func step() throws(StreamStoreError) -> Bool {
        let rc = sqlite3_step(pointer)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc, "a statement failed")
        }
    }

    /// Steps once and returns SQLite's result code (the connection's error message stays set
    /// until the statement is reset).
    func stepResult() -> Int32 {
        sqlite3_step(pointer)
    }

    /// Steps to the end, then resets.
    func run() throws(StreamStoreError) {
        defer { reset() }
        while try step() {}
    }

    func isNull(_ column: Int32) -> Bool { sqlite3_column_type(pointer, column) == SQLITE_NULL }
    func type(_ column: Int32) -> Int32 { sqlite3_column_type(pointer, column) }
    func int64(_ column: Int32) -> Int64 { sqlite3_column_int64(pointer, column) }

    func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(pointer, column) else { return nil }
        let count = Int(sqlite3_column_bytes(pointer, column))
        return String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
    }

    /// The blob in `column` ([] for an empty blob).
    func blob(_ column: Int32) -> [UInt8] {
        let raw = sqlite3_column_blob(pointer, column)
        let count = Int(sqlite3_column_bytes(pointer, column))
        guard let raw, count > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: raw, count: count))
    }

    private func check(_ rc: Int32) throws(StreamStoreError) {
        guard rc == SQLITE_OK else { throw connection.error(rc, "cannot bind a value") }
    }
}
