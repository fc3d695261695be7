import StreamStore
import Testing

@Suite("StoreFaultInjector")
struct FaultInjectionTests {
    /// Opens a store with `faults`, commits stream A durably, runs `injure`, then tries to commit stream B.
    /// Returns whether B's commit succeeded and the names found after closing and reopening without faults.
    private func commitAThenB(
        _ directory: String, injure: (StoreFaultInjector) throws -> Void,
        afterB: (StoreFaultInjector, StreamDatabase) async throws -> Void = { _, _ in }
    ) async throws -> (committed: Bool, error: StreamStoreError?, names: [String]) {
        let faults = try StoreFaultInjector()
        let database = try await StreamDatabase.open(directory: directory, faults: faults)
        let a = try await database.commit(CommitBatch(created: [newStream("A")]))[0]
        try await database.commit(CommitBatch(appended: [(a, [StreamRecordRow(sequence: 1, bytes: blob(1))])]))
        try injure(faults)
        var failure: StreamStoreError?
        do {
            try await database.commit(CommitBatch(created: [newStream("B")], appended: [(a, [StreamRecordRow(sequence: 2, bytes: blob(2))])]))
        } catch {
            failure = error
        }
        try await afterB(faults, database)
        await database.close()
        let reopened = try await StreamDatabase.open(directory: directory)
        let streams = try await reopened.loadAll()
        await reopened.close()
        let a2 = streams.first { $0.name == "A" }
        #expect(a2?.journal.first?.sequence == 1, "A's first record is durable")
        #expect(a2?.journal.count == (streams.count == 2 ? 2 : 1), "B's batch is all-or-nothing")
        return (failure == nil, failure, streams.map(\.name))
    }

    @Test("a failed fsync fails the commit, poisons the store, and the batch is not visible after reopen")
    func failedSync() async throws {
        try await withTemporaryStore { directory in
            let result = try await commitAThenB(directory, injure: { $0.failSync() }) { _, database in
                await expectStoreError(.poisoned) { try await database.commit(CommitBatch(created: [newStream("C")])) }
            }
            #expect(!result.committed && result.error?.code == .ioFailure, "\(String(describing: result.error))")
            #expect(result.names == ["A"])
        }
    }

    @Test("a failed write with a full disk fails the commit with .full")
    func diskFull() async throws {
        try await withTemporaryStore { directory in
            let result = try await commitAThenB(directory, injure: { $0.failWrite(with: .diskFull) })
            #expect(result.error?.code == .full, "\(String(describing: result.error))")
            #expect(result.names == ["A"])
        }
    }

    @Test("power cut before B's fsync: A survives, B is gone", arguments: [false, true])
    func powerCutBeforeSync(tear: Bool) async throws {
        try await withTemporaryStore { directory in
            let result = try await commitAThenB(directory, injure: { $0.cutPowerAtSync(timing: .beforeSync, tearLastWrite: tear) }) {
                faults, _ in #expect(faults.isPowerCut)
            }
            #expect(!result.committed)
            #expect(result.names == ["A"])
        }
    }

    @Test("power cut right after B's fsync: A and B survive")
    func powerCutAfterSync() async throws {
        try await withTemporaryStore { directory in
            let result = try await commitAThenB(directory, injure: { $0.cutPowerAtSync(timing: .afterSync) }) {
                faults, _ in #expect(faults.isPowerCut)
            }
            #expect(result.committed, "\(String(describing: result.error))")
            #expect(result.names == ["A", "B"])
        }
    }

    @Test("a power cut with no unsynced writes after durable commits loses nothing")
    func powerCutAfterDurableCommits() async throws {
        try await withTemporaryStore { directory in
            let result = try await commitAThenB(directory, injure: { _ in }) { faults, _ in
                let undone = try faults.simulatePowerCut(tearLastWrite: true)
                #expect(undone == 0)
            }
            #expect(result.committed && result.names == ["A", "B"])
        }
    }

    /// Commits `rounds` streams of 400 KB each (enough for SQLite to checkpoint the WAL into the main
    /// file on the way); returns the names whose commit reported success.
    private func bigWorkload(_ database: StreamDatabase, rounds: Int) async -> [String] {
        var committed: [String] = []
        for round in 0..<rounds {
            do {
                try await database.commit(CommitBatch(created: [(name: "s\(round)", metadata: blob(round, count: 400_000), checkpoint: [], checkpointSequence: 0)]))
                committed.append("s\(round)")
            } catch {
                break
            }
        }
        return committed
    }

    @Test("power cut at every fsync of a workload (WAL appends and checkpoints): exactly the acknowledged commits survive", arguments: [PowerCutTimingCase.before, .after])
    func powerCutSweep(timing: PowerCutTimingCase) async throws {
        let rounds = 12
        var totalSyncs = 0
        try await withTemporaryStore { directory in
            let faults = try StoreFaultInjector()
            let database = try await StreamDatabase.open(directory: directory, faults: faults)
            let before = faults.syncCount
            #expect(await bigWorkload(database, rounds: rounds).count == rounds)
            totalSyncs = faults.syncCount - before
            await database.close()
        }
        #expect(totalSyncs > rounds, "the workload includes checkpoint fsyncs")
        for nth in 1...totalSyncs {
            try await withTemporaryStore { directory in
                let faults = try StoreFaultInjector()
                let database = try await StreamDatabase.open(directory: directory, faults: faults)
                faults.cutPowerAtSync(nth: nth, timing: timing.value, tearLastWrite: nth % 2 == 1, seed: UInt64(nth) &* 7919)
                let committed = await bigWorkload(database, rounds: rounds)
                #expect(faults.isPowerCut)
                await database.close()
                let reopened = try await StreamDatabase.open(directory: directory)
                let streams = try await reopened.loadAll()
                await reopened.close()
                #expect(streams.map(\.name) == committed, "cut \(timing) fsync \(nth)")
                for stream in streams {
                    #expect(stream.quarantine == nil && stream.metadata == blob(Int(stream.name.dropFirst())!, count: 400_000))
                }
            }
        }
    }
}

/// The power-cut timings, as test arguments.
enum PowerCutTimingCase: Sendable, CustomStringConvertible {
    case before, after
    var value: StoreFaultInjector.PowerCutTiming { self == .before ? .beforeSync : .afterSync }
    var description: String { self == .before ? "before" : "after" }
}
