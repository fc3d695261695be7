import CSQLite
import Foundation
import StreamStore
import Testing

/// A fresh directory path under /tmp (not created), removed by `body`'s end.
func withTemporaryStore(_ body: (String) async throws -> Void) async throws {
    let root = "/tmp/streamstore-test-\(UInt64.random(in: 0...UInt64.max))"
    defer { try? FileManager.default.removeItem(atPath: root) }
    try await body(root + "/store")
}

/// Runs SQL directly on a database file (to plant damage or inspect rows), bypassing StreamStore.
@discardableResult
func rawSQL(_ path: String, _ sql: String) -> [[String]] {
    var db: OpaquePointer?
    #expect(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK)
    defer { sqlite3_close_v2(db) }
    var rows: [[String]] = []
    var statement: OpaquePointer?
    var tail: UnsafePointer<CChar>?
    var remaining = sql
    while !remaining.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        let consumed: Int = remaining.withCString { start in
            let rc = sqlite3_prepare_v2(db, start, -1, &statement, &tail)
            #expect(rc == SQLITE_OK, "prepare: \(String(cString: sqlite3_errmsg(db)))")
            return tail.map { $0 - start } ?? strlen(start)
        }
        while statement != nil {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_ROW {
                rows.append((0..<sqlite3_column_count(statement)).map { column in
                    sqlite3_column_text(statement, column).map { String(cString: $0) } ?? "NULL"
                })
                continue
            }
            #expect(rc == SQLITE_DONE, "step: \(String(cString: sqlite3_errmsg(db)))")
            break
        }
        sqlite3_finalize(statement)
        statement = nil
        remaining = String(remaining.utf8.dropFirst(consumed))!
    }
    return rows
}

/// Bytes derived from a number, for recognisable test blobs.
func blob(_ seed: Int, count: Int = 32) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: seed &* 31 &+ $0) }
}

/// A creation entry for a batch.
func newStream(_ name: String, checkpointSequence: UInt64 = 0) -> (
    name: String, metadata: [UInt8], checkpoint: [UInt8], checkpointSequence: UInt64
) {
    (name: name, metadata: Array("meta-\(name)".utf8), checkpoint: Array("cp-\(name)".utf8), checkpointSequence: checkpointSequence)
}

/// Expects `body` to throw a store error with `code`.
func expectStoreError(
    _ code: StreamStoreError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected \(code), nothing thrown", sourceLocation: sourceLocation)
    } catch let error as StreamStoreError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a StreamStoreError, got \(error)", sourceLocation: sourceLocation)
    }
}
