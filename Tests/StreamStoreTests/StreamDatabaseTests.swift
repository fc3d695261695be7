import Foundation
import StreamStore
import Testing

@Suite("StreamDatabase")
struct StreamDatabaseTests {
    @Test("created streams load back with their blobs")
    func roundTrip() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let ids = try await database.commit(CommitBatch(created: [newStream("alpha", checkpointSequence: 7), newStream("beta")]))
            #expect(ids.count == 2 && ids[0] != ids[1])
            await database.close()

            let reopened = try await StreamDatabase.open(directory: directory)
            let streams = try await reopened.loadAll()
            #expect(streams.map(\.name) == ["alpha", "beta"])
            #expect(streams.map(\.id) == ids)
            #expect(streams[0].metadata == Array("meta-alpha".utf8))
            #expect(streams[0].checkpoint == Array("cp-alpha".utf8))
            #expect(streams[0].checkpointSequence == 7)
            #expect(streams[0].indexSnapshot == nil && streams[0].journal.isEmpty && streams[0].quarantine == nil)
            #expect(reopened.path == directory + "/streamd.sqlite3")
            await reopened.close()
        }
    }

    @Test("journal rows come back in sequence order; empty blobs stay empty")
    func journalOrder() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let id = try await database.commit(CommitBatch(created: [newStream("s")]))[0]
            let rows = [3, 1, 2].map { StreamRecordRow(sequence: UInt64($0), bytes: blob($0)) }
            try await database.commit(CommitBatch(appended: [(id, rows)]))
            try await database.commit(CommitBatch(appended: [(id, [StreamRecordRow(sequence: 5, bytes: []), StreamRecordRow(sequence: 4, bytes: blob(4))])]))
            let journal = try await database.loadAll()[0].journal
            #expect(journal.map(\.sequence) == [1, 2, 3, 4, 5])
            #expect(journal[0].bytes == blob(1) && journal[4].bytes == [])
            await database.close()
        }
    }

    @Test("a checkpoint deletes journal rows at or below its sequence and keeps later ones")
    func compaction() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let id = try await database.commit(CommitBatch(created: [newStream("s")]))[0]
            try await database.commit(CommitBatch(appended: [(id, (1...10).map { StreamRecordRow(sequence: UInt64($0), bytes: blob($0)) })]))
            try await database.commit(CommitBatch(checkpoints: [(id, checkpoint: blob(99), sequence: 6, indexSnapshot: blob(7, count: 3))]))
            let stream = try await database.loadAll()[0]
            #expect(stream.checkpoint == blob(99) && stream.checkpointSequence == 6)
            #expect(stream.indexSnapshot == blob(7, count: 3))
            #expect(stream.journal.map(\.sequence) == [7, 8, 9, 10])
            await database.close()
            #expect(rawSQL(directory + "/streamd.sqlite3", "SELECT min(sequence), count(*) FROM journal") == [["7", "4"]])
        }
    }

    @Test("removing a stream deletes its journal")
    func removalCascades() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let ids = try await database.commit(CommitBatch(created: [newStream("gone"), newStream("kept")]))
            let rows = (1...3).map { StreamRecordRow(sequence: UInt64($0), bytes: blob($0)) }
            try await database.commit(CommitBatch(appended: [(ids[0], rows), (ids[1], rows)]))
            try await database.commit(CommitBatch(removed: [ids[0]]))
            let streams = try await database.loadAll()
            #expect(streams.map(\.name) == ["kept"] && streams[0].journal.count == 3)
            await expectStoreError(.unknownStream) { try await database.commit(CommitBatch(removed: [ids[0]])) }
            await database.close()
            let path = directory + "/streamd.sqlite3"
            #expect(rawSQL(path, "SELECT count(*) FROM journal WHERE stream_id = \(ids[0].rawValue)") == [["0"]])
        }
    }

    @Test("names are unique; a refused batch changes nothing and the store stays usable")
    func nameUniqueness() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            try await database.commit(CommitBatch(created: [newStream("same")]))
            await expectStoreError(.duplicateName) {
                try await database.commit(CommitBatch(created: [newStream("other"), newStream("same")]))
            }
            await expectStoreError(.unknownStream) {
                try await database.commit(CommitBatch(appended: [(StoredStreamID(rawValue: 999), [StreamRecordRow(sequence: 1, bytes: [1])])]))
            }
            await expectStoreError(.misuse) {
                try await database.commit(CommitBatch(created: [newStream("big", checkpointSequence: UInt64.max)]))
            }
            try await database.commit(CommitBatch(created: [newStream("other")]))
            #expect(try await database.loadAll().map(\.name) == ["same", "other"])
            await database.close()
        }
    }

    @Test("quarantine marks and metadata updates persist across reopen")
    func quarantinePersists() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let id = try await database.commit(CommitBatch(created: [newStream("q")]))[0]
            try await database.commit(CommitBatch(metadataUpdates: [(id, blob(5))], quarantined: [(id, reason: "frame decrypt failures")]))
            await database.close()
            let reopened = try await StreamDatabase.open(directory: directory)
            let stream = try await reopened.loadAll()[0]
            #expect(stream.quarantine == "frame decrypt failures" && stream.metadata == blob(5))
            #expect(stream.checkpoint == Array("cp-q".utf8))
            await reopened.close()
        }
    }

    @Test("directory is 0700, database, -wal and -shm are 0600; a group-readable directory is refused")
    func permissions() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            try await database.commit(CommitBatch(created: [newStream("p")]))
            let path = database.path
            func mode(_ path: String) throws -> Int {
                try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            }
            #expect(try mode(directory) == 0o700)
            #expect(try mode(path) == 0o600)
            #expect(try mode(path + "-wal") == 0o600)
            #expect(try mode(path + "-shm") == 0o600)
            await database.close()

            try FileManager.default.setAttributes([.posixPermissions: 0o750], ofItemAtPath: directory)
            await expectStoreError(.permissions) { _ = try await StreamDatabase.open(directory: directory) }
        }
    }

    @Test("a file with a newer schema version is refused")
    func schemaTooNew() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            await database.close()
            rawSQL(directory + "/streamd.sqlite3", "PRAGMA user_version = 2")
            await expectStoreError(.schemaTooNew) { _ = try await StreamDatabase.open(directory: directory) }
        }
    }

    @Test("a damaged or oversized row quarantines only its own stream")
    func corruptRowQuarantines() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let ids = try await database.commit(CommitBatch(created: [newStream("good"), newStream("negative"), newStream("huge"), newStream("row")]))
            try await database.commit(CommitBatch(appended: ids.map { ($0, [StreamRecordRow(sequence: 1, bytes: blob(1))]) }))
            await database.close()
            let path = directory + "/streamd.sqlite3"
            rawSQL(path, "UPDATE streams SET checkpoint_sequence = -5 WHERE name = 'negative'")
            rawSQL(path, "UPDATE streams SET checkpoint = zeroblob(\(StoreLimits.maximumBlobSize + 1)) WHERE name = 'huge'")
            rawSQL(path, "UPDATE journal SET bytes = zeroblob(\(StoreLimits.maximumBlobSize + 1)) WHERE stream_id = \(ids[3].rawValue)")

            let reopened = try await StreamDatabase.open(directory: directory)
            let streams = try await reopened.loadAll()
            #expect(streams.map(\.name) == ["good", "negative", "huge", "row"])
            #expect(streams[0].quarantine == nil && streams[0].journal.count == 1)
            for stream in streams.dropFirst() {
                #expect(stream.quarantine?.hasPrefix("unreadable: ") == true, "\(stream.quarantine ?? "nil")")
                #expect(stream.checkpoint.isEmpty && stream.journal.isEmpty)
            }
            #expect(streams[2].quarantine?.contains("exceeds") == true)
            await reopened.close()
        }
    }

    @Test("a group commit of rows for 100 streams in one batch")
    func groupCommit() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let ids = try await database.commit(CommitBatch(created: (0..<100).map { newStream("s\($0)") }))
            #expect(ids.count == 100)
            let appended = ids.enumerated().map { index, id in
                (id, (1...3).map { StreamRecordRow(sequence: UInt64($0), bytes: blob(index * 10 + $0)) })
            }
            try await database.commit(CommitBatch(appended: appended))
            await database.close()
            let reopened = try await StreamDatabase.open(directory: directory)
            let streams = try await reopened.loadAll()
            #expect(streams.count == 100)
            for (index, stream) in streams.enumerated() {
                #expect(stream.name == "s\(index)")
                #expect(stream.journal.map(\.bytes) == (1...3).map { blob(index * 10 + $0) })
            }
            await reopened.close()
        }
    }
}
