import StreamStore
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Prints commit throughput; asserts only correctness, never timing.
@Suite("StoreBenchmark", .serialized)
struct StoreBenchmarkTests {
    @Test("commits per second with 1 and 100 streams per batch", arguments: [1, 100])
    func commitsPerSecond(streamsPerBatch: Int) async throws {
        try await withTemporaryStore { directory in
            let database = try await StreamDatabase.open(directory: directory)
            let ids = try await database.commit(CommitBatch(created: (0..<streamsPerBatch).map { newStream("s\($0)") }))
            let commits = 200
            let record = blob(1, count: 200)
            let start = ContinuousClock.now
            for sequence in 1...commits {
                try await database.commit(CommitBatch(appended: ids.map { ($0, [StreamRecordRow(sequence: UInt64(sequence), bytes: record)]) }))
            }
            let elapsed = ContinuousClock.now - start
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let rate = Double(commits) / seconds
            print("StoreBenchmark: \(streamsPerBatch) stream(s)/batch, 200-byte records: \(Int(rate)) commits/s, \(Int(rate * Double(streamsPerBatch))) records/s")
            #expect(try await database.loadAll().allSatisfy { $0.journal.count == commits })
            await database.close()
        }
    }
}
