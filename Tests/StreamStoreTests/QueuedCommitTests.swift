import Foundation
import StreamStore
import Testing

/// `StreamDatabase.commit(_:completion:)`: batches queued without waiting commit in order,
/// their completions run in that order, and a refused batch is reported through its completion.
@Suite("Queued commits")
struct QueuedCommitTests {
    /// Queues `batches` at once and returns each completion's index and result, in the order they ran.
    private func commitAll(_ batches: [CommitBatch], on database: StreamDatabase) async -> [(Int, Result<[StoredStreamID], StreamStoreError>)] {
        let outcomes = NSLock()
        nonisolated(unsafe) var ran: [(Int, Result<[StoredStreamID], StreamStoreError>)] = []
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            for (index, batch) in batches.enumerated() {
                database.commit(batch) { result in
                    let finished = outcomes.withLock {
                        ran.append((index, result))
                        return ran.count == batches.count
                    }
                    if finished { done.resume() }
                }
            }
        }
        return outcomes.withLock { ran }
    }

    @Test("batches queued at once commit and complete in queue order")
    func queuedBatchesCompleteInOrder() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let id = try await database.commit(CommitBatch(created: [newStream("s")]))[0]
            let batches = (1...40).map { CommitBatch(appended: [(id, [StreamRecordRow(sequence: UInt64($0), bytes: blob($0))])]) }
            let ran = await commitAll(batches, on: database)
            #expect(ran.map(\.0) == Array(0..<40))
            for (_, result) in ran { #expect(throws: Never.self) { try result.get() } }
            let journal = try await database.loadAll()[0].journal
            #expect(journal.map(\.sequence) == (1...40).map(UInt64.init))
            #expect(journal.last?.bytes == blob(40))
            await database.close()
        }
    }

    @Test("a refused batch fails through its completion and the batches around it still commit")
    func refusedBatchIsReportedInItsCompletion() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let id = try await database.commit(CommitBatch(created: [newStream("s")]))[0]
            let tooLarge = UInt64(Int64.max) + 1
            let batches = [
                CommitBatch(appended: [(id, [StreamRecordRow(sequence: 1, bytes: blob(1))])]),
                CommitBatch(appended: [(id, [StreamRecordRow(sequence: tooLarge, bytes: blob(2))])]),
                CommitBatch(appended: [(id, [StreamRecordRow(sequence: 3, bytes: blob(3))])]),
            ]
            let ran = await commitAll(batches, on: database)
            // The refused batch is refused before it is queued, so its completion may come first.
            #expect(Set(ran.map(\.0)) == [0, 1, 2])
            for (index, result) in ran {
                if index == 1 {
                    #expect(throws: StreamStoreError.self) { try result.get() }
                } else {
                    #expect(throws: Never.self) { try result.get() }
                }
            }
            #expect(try await database.loadAll()[0].journal.map(\.sequence) == [1, 3])
            await database.close()
        }
    }

    @Test("a batch queued on a closed store fails with closed")
    func closedStoreRefusesQueuedBatches() async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            await database.close()
            let ran = await commitAll([CommitBatch(created: [newStream("late")])], on: database)
            #expect(ran.count == 1)
            #expect(throws: StreamStoreError.self) { try ran[0].1.get() }
            if case .failure(let error) = ran[0].1 { #expect(error.code == .closed) }
        }
    }
}
