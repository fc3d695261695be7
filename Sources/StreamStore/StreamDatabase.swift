/// The daemon's durable store: one SQLite database (WAL, `synchronous=FULL`) holding every
/// stream's metadata, latest checkpoint, index snapshot and journal of records since it.
///
/// - Important: The file holds secrets (stream keys and addresses inside the opaque blobs). It lives
///   in a directory that must be private (0700, owned by this user: an existing directory with group
///   or other permissions is refused, not changed); the database and its `-wal`/`-shm` files are
///   created 0600 whatever the umask. Deleted rows are overwritten (`secure_delete`), but copies can
///   remain in the WAL until it is checkpointed, and in backups.
///
/// Every SQLite call runs on one dedicated thread (not Swift's cooperative pool), so a slow fsync
/// never blocks other tasks. Calls are served in the order they arrive.
///
/// Commits are all-or-nothing and durable when ``commit(_:)`` returns. **Do not retry a failed
/// commit**: after an I/O error SQLite cannot say whether the batch reached the disk, so the caller
/// must treat the failure as fatal (the daemon exits and reloads on restart). After such an error
/// this object refuses further commits with ``StreamStoreError/Code/poisoned``. Errors found before
/// anything was written (``StreamStoreError/Code/misuse``, ``StreamStoreError/Code/duplicateName``,
/// ``StreamStoreError/Code/unknownStream``, ``StreamStoreError/Code/constraint``) roll the batch
/// back completely and leave the store usable.
public final class StreamDatabase: Sendable {
    /// The database file's path.
    public let path: String
    private let thread: StoreThread
    private let state: StoreState

    private init(path: String, thread: StoreThread, state: StoreState) {
        self.path = path
        self.thread = thread
        self.state = state
    }

    /// A database dropped without ``close()`` still closes its connection and ends its thread.
    deinit {
        let state = self.state
        _ = thread.submit { state.close() }
        thread.stop()
    }

    /// Opens (creating if needed) the store `fileName` in `directory`.
    ///
    /// - Parameter faults: routes all file I/O through this test injector's VFS.
    /// - Throws: ``StreamStoreError/Code/permissions`` for an unsafe directory or file,
    ///   ``StreamStoreError/Code/schemaTooNew`` for a file written by a newer streamd, and the
    ///   SQLite error otherwise.
    public static func open(
        directory: String, fileName: String = "streamd.sqlite3", faults: StoreFaultInjector? = nil
    ) async throws(StreamStoreError) -> StreamDatabase {
        guard !fileName.isEmpty, !fileName.contains("/") else {
            throw StreamStoreError(.misuse, "the file name must be a single path component")
        }
        let path = directory.hasSuffix("/") ? directory + fileName : directory + "/" + fileName
        let thread = StoreThread(name: "streamd-store")
        let result = await thread.run { () -> Result<StoreState, StreamStoreError> in
            Result { () throws(StreamStoreError) -> StoreState in
                try StoreFiles.prepareDirectory(directory)
                try StoreFiles.secureFile(path, create: true)
                try StoreFiles.secureFile(path + "-wal", create: false)
                try StoreFiles.secureFile(path + "-shm", create: false)
                let connection = try SQLiteConnection(path: path, vfs: faults?.vfsName)
                do throws(StreamStoreError) {
                    try StoreSchema.prepare(connection)
                } catch {
                    connection.close()
                    throw error
                }
                return StoreState(connection: connection, faults: faults)
            }
        }
        switch result {
        case .success(let state): return StreamDatabase(path: path, thread: thread, state: state)
        case .failure(let error):
            thread.stop()
            throw error
        }
    }

    /// Reads every stream, quarantined ones included.
    ///
    /// A stream whose row or journal cannot be read (damaged, wrong type, a blob above
    /// ``StoreLimits/maximumBlobSize``) is returned with ``StoredStream/quarantine`` set and empty
    /// blobs instead of failing the load; that mark is not written back unless the caller commits it.
    public func loadAll() async throws(StreamStoreError) -> [StoredStream] {
        let state = self.state
        return try await thread.run { () -> Result<[StoredStream], StreamStoreError> in
            Result { () throws(StreamStoreError) -> [StoredStream] in
                try StreamLoader(connection: state.open()).loadAll()
            }
        }.get()
    }

    /// Writes `batch` in one transaction and returns once it is durable (fsynced).
    ///
    /// - Returns: the ids of `batch.created`, in order.
    /// - Important: A thrown error is final: do not retry (see the type's documentation).
    @discardableResult
    public func commit(_ batch: CommitBatch) async throws(StreamStoreError) -> [StoredStreamID] {
        try StreamCommitter.validate(batch)
        if batch.isEmpty { return [] }
        return try await withCheckedContinuation { continuation in
            enqueueCommit(batch) { continuation.resume(returning: $0) }
        }.get()
    }

    /// Queues `batch` for one transaction and returns at once; `completion` runs on the store
    /// thread once the batch is durable (fsynced) or failed.
    ///
    /// Batches are committed one after another in the order they were queued, and completions
    /// run in that order, so a caller can keep the next batch queued while one commits (a
    /// pipeline) without waiting for a round trip between them. The completion must return
    /// quickly: the next commit starts after it. A batch refused before it is queued
    /// (``StreamStoreError/Code/misuse``, or ``StreamStoreError/Code/closed`` once the store is
    /// closed) is reported at once, on the caller's thread, possibly before earlier batches end.
    ///
    /// - Important: A failure is final: do not retry (see the type's documentation).
    public func commit(
        _ batch: CommitBatch, completion: @escaping @Sendable (Result<[StoredStreamID], StreamStoreError>) -> Void
    ) {
        do throws(StreamStoreError) {
            try StreamCommitter.validate(batch)
        } catch {
            completion(.failure(error))
            return
        }
        enqueueCommit(batch, completion: completion)
    }

    /// Queues a validated batch on the store thread: the one commit path of both forms.
    private func enqueueCommit(
        _ batch: CommitBatch, completion: @escaping @Sendable (Result<[StoredStreamID], StreamStoreError>) -> Void
    ) {
        let state = self.state
        let queued = thread.submit {
            completion(batch.isEmpty ? .success([]) : Result { () throws(StreamStoreError) -> [StoredStreamID] in try state.commit(batch) })
        }
        if !queued { completion(.failure(StreamStoreError(.closed, "the store is closed"))) }
    }

    /// Closes the database (waiting for queued work) and stops its thread. Later calls fail with `.closed`.
    public func close() async {
        let state = self.state
        _ = await thread.run { () -> Result<Void, StreamStoreError> in
            state.close()
            return .success(())
        }
        thread.stop()
    }
}

/// The connection and flags, touched only on the store thread.
final class StoreState: @unchecked Sendable {
    private var connection: SQLiteConnection?
    private var poisoned: StreamStoreError?
    /// Kept alive while the connection uses its VFS.
    private var faults: StoreFaultInjector?

    init(connection: SQLiteConnection, faults: StoreFaultInjector?) {
        self.connection = connection
        self.faults = faults
    }

    func open() throws(StreamStoreError) -> SQLiteConnection {
        guard let connection else { throw StreamStoreError(.closed, "the store is closed") }
        return connection
    }

    func commit(_ batch: CommitBatch) throws(StreamStoreError) -> [StoredStreamID] {
        let connection = try open()
        if let poisoned {
            throw StreamStoreError(.poisoned, "an earlier commit failed (\(poisoned.code)); reopen the store")
        }
        do {
            try connection.executeCached("BEGIN IMMEDIATE")
            let ids = try StreamCommitter(connection: connection).apply(batch)
            try connection.executeCached("COMMIT")
            return ids
        } catch {
            if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
            switch error.code {
            case .misuse, .duplicateName, .unknownStream, .constraint, .busy: break
            default: poisoned = error
            }
            throw error
        }
    }

    func close() {
        connection?.close()
        connection = nil
        faults = nil
    }
}
