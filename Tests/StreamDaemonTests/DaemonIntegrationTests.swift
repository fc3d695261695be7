import IPC
import StreamClient
import StreamDaemon
import StreamStore
import Testing

/// streamd end to end, in process: real Unix sockets, a real SQLite file, the embedded kpclientd.
@Suite(.timeLimit(.minutes(10)))
struct DaemonIntegrationTests {
    /// Deterministic test bytes.
    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
    }

    /// Reads everything until the peer closes, consuming as it goes.
    static func receiveAll(_ client: StreamdClient, _ name: String) async throws -> [UInt8] {
        var received: [UInt8] = []
        var offset: UInt64 = 0
        while true {
            let (_, bytes, end) = try await client.read(name, offset: offset, wait: true)
            received += bytes
            offset += UInt64(bytes.count)
            if !bytes.isEmpty { try await client.consume(name, through: offset) }
            if end { return received }
        }
    }

    @Test func twoStreamsCarryDataBothWays() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let alice = try await daemon.client()
        let bob = try await daemon.client()
        let (created, address) = try await alice.create("alice")
        #expect(created.role == .listener)
        #expect(address.hasPrefix("kps1"))
        let joined = try await bob.join("bob", address: address)
        #expect(joined.role == .dialer)

        let fromAlice = Self.pattern(300_000, seed: 7)
        let fromBob = Self.pattern(5_000, seed: 3)
        async let bobGot = Self.receiveAll(bob, "bob")
        async let aliceGot = Self.receiveAll(alice, "alice")
        #expect(try await alice.send("alice", bytes: fromAlice, at: 0) == UInt64(fromAlice.count))
        #expect(try await bob.send("bob", bytes: fromBob, at: 0) == UInt64(fromBob.count))
        try await alice.closeStream("alice")
        try await bob.closeStream("bob")
        #expect(try await bobGot == fromAlice)
        #expect(try await aliceGot == fromBob)

        let list = try await alice.list()
        #expect(list.map(\.name.rawValue) == ["alice", "bob"])
        #expect(list.allSatisfy { $0.engine == nil }, "only status describes the engine")
        let status = try await alice.status("alice")
        // The engine's diagnostics, for a human debugging a stream: its frames, reads and timers.
        let engine = try #require(status.engine)
        #expect(engine.contains("unacked=") && engine.contains("reads=") && engine.contains("rto="))
        #expect(status.bytesWritten == UInt64(fromAlice.count))
        #expect(status.bytesAcked == UInt64(fromAlice.count))
        #expect(status.bytesConsumed == UInt64(fromBob.count))
        #expect(status.state == .closed)
        await alice.close()
        await bob.close()
        let result = await daemon.stop()
        #expect(throws: Never.self) { try result.get() }
    }

    @Test func writesAreIdempotentByOffsetAndGapsAreRefused() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let client = try await daemon.client()
        _ = try await client.create("s")
        let first = try await client.write("s", offset: 0, data: [1, 2, 3, 4])
        #expect(first.accepted == 4 && first.offset == 4)
        // The same bytes again: nothing new is accepted, the end is confirmed.
        let again = try await client.write("s", offset: 0, data: [1, 2, 3, 4])
        #expect(again.accepted == 0 && again.offset == 4)
        // Overlapping: only the new suffix is taken.
        let overlap = try await client.write("s", offset: 2, data: [3, 4, 5, 6])
        #expect(overlap.accepted == 2 && overlap.offset == 6)
        // A gap is refused with the offset the daemon expects.
        do {
            _ = try await client.write("s", offset: 10, data: [9])
            Issue.record("a write past the end was accepted")
        } catch let error as IPCError {
            #expect(error.code == .wrongOffset)
            #expect(error.expectedOffset == 6)
        }
        #expect(try await client.status("s").bytesWritten == 6)
        await client.close()
        await daemon.stop()
    }

    @Test func streamsAndUnconsumedDataSurviveARestart() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        var daemon = try await DaemonHarness.start(configuration)
        var client = try await daemon.client()
        let (_, address) = try await client.create("left")
        _ = try await client.join("right", address: address)
        let data = Self.pattern(40_000, seed: 11)
        _ = try await client.send("left", bytes: data, at: 0)
        try await client.sync("left")
        // The receiver reads part of it and consumes only the first 1,000 bytes.
        let (_, early, _) = try await client.read("right", offset: 0, maxLength: 5_000)
        #expect(early == Array(data.prefix(early.count)))
        try await client.consume("right", through: 1_000)
        await client.close()
        let stopped = await daemon.stop()
        #expect(throws: Never.self) { try stopped.get() }

        daemon = try await DaemonHarness.start(configuration)
        client = try await daemon.client()
        let status = try await client.status("right")
        #expect(status.bytesConsumed == 1_000)
        #expect(status.bytesReceived == UInt64(data.count))
        // Resuming at the consumed offset yields exactly the rest.
        var rest: [UInt8] = []
        var offset: UInt64 = 1_000
        while offset < UInt64(data.count) {
            let (_, bytes, _) = try await client.read("right", offset: offset, wait: true)
            rest += bytes
            offset += UInt64(bytes.count)
        }
        #expect(rest == Array(data[1_000...]))
        // The restored writer keeps sending.
        _ = try await client.send("left", bytes: [42], at: UInt64(data.count))
        try await client.closeStream("left")
        let (_, tail, end) = try await client.read("right", offset: UInt64(data.count), wait: true)
        #expect(tail == [42])
        _ = end
        await client.close()
        await daemon.stop()
    }

    @Test func errorsAreClearAndTheConnectionSurvivesThem() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let client = try await daemon.client()
        await #expect(throws: IPCError.self) { _ = try await client.status("missing") }
        do {
            _ = try await client.status("missing")
        } catch let error as IPCError {
            #expect(error.code == .noSuchStream)
        }
        do {
            _ = try await client.join("x", address: "kps1notanaddress")
            Issue.record("a bad address was accepted")
        } catch let error as IPCError {
            #expect(error.code == .invalidAddress)
        }
        do {
            _ = try await client.create("bad name!")
            Issue.record("a bad name was accepted")
        } catch let error as IPCError {
            #expect(error.code == .invalidName)
        }
        _ = try await client.create("dup")
        do {
            _ = try await client.create("dup")
            Issue.record("a duplicate name was accepted")
        } catch let error as IPCError {
            #expect(error.code == .nameInUse)
        }
        try await client.remove("dup")
        #expect(try await client.list().isEmpty)
        let status = try await client.daemonStatus()
        #expect(status.kpclientdConnected)
        #expect(status.streams == 0)
        await client.close()
        await daemon.stop()
    }

    @Test func aSecondDaemonOnTheSameSocketIsRefused() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        let daemon = try await DaemonHarness.start(configuration)
        var second = configuration
        second.stateDirectory = directory.path + "/state2"
        await #expect(throws: (any Error).self) { _ = try await DaemonHarness.start(second) }
        // Another socket but the same state directory: refused too (one database, one daemon).
        var third = configuration
        third.socketPath = directory.path + "/run3/streamd.sock"
        do {
            _ = try await DaemonHarness.start(third)
            Issue.record("a second daemon started on the same state directory")
        } catch {
            #expect("\(error)".contains("state directory"))
        }
        // The first one still answers.
        let client = try await daemon.client()
        #expect(try await client.list().isEmpty)
        await client.close()
        await daemon.stop()
    }
}

/// Compaction folds journals into checkpoints and stores the transport's index caches with them.
@Suite(.timeLimit(.minutes(10)))
struct CompactionTests {
    @Test func compactionStoresCheckpointsAndIndexCaches() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        var daemon = try await DaemonHarness.start(configuration)
        let first = try await daemon.client()
        var client = first
        let (_, address) = try await client.create("writer")
        _ = try await client.join("reader", address: address)
        let events = try await client.events(for: ["writer"])
        let data = DaemonIntegrationTests.pattern(1_500_000, seed: 5)
        async let received = DaemonIntegrationTests.receiveAll(first, "reader")
        _ = try await client.send("writer", bytes: data, at: 0)
        try await client.closeStream("writer")
        #expect(try await received == data)
        // The writer's subscribers heard that everything was acknowledged.
        var acknowledged: UInt64 = 0
        for await event in events {
            if case .writeAcknowledged(_, let offset) = event { acknowledged = offset }
            if acknowledged == UInt64(data.count) { break }
        }
        #expect(acknowledged == UInt64(data.count))
        await client.close()
        await daemon.stop()

        // About 1,000 frames each way: both streams compacted, so their journals are short and
        // their index caches are stored.
        let database = try await StreamDatabase.open(directory: configuration.stateDirectory)
        let stored = try await database.loadAll()
        await database.close()
        #expect(stored.count == 2)
        for stream in stored {
            #expect(stream.checkpointSequence > 0, "\(stream.name) never compacted")
            #expect(stream.journal.count < 600, "\(stream.name) kept \(stream.journal.count) journal rows")
            #expect(stream.indexSnapshot != nil, "\(stream.name) has no stored index cache")
        }

        // Restored from those checkpoints, the streams carry on.
        daemon = try await DaemonHarness.start(configuration)
        client = try await daemon.client()
        #expect(try await client.status("reader").bytesConsumed == UInt64(data.count))
        #expect(try await client.status("writer").writeClosed)
        _ = try await client.send("reader", bytes: [1, 2, 3], at: 0)
        let (_, back, _) = try await client.read("writer", offset: 0, wait: true)
        #expect(back == [1, 2, 3])
        await client.close()
        await daemon.stop()
    }
}
