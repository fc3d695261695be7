import CBOR
import StreamEngine
import StreamEngineTesting
import Testing

/// The async `Stream` over an in-memory store, on the real clock.
@Suite struct StreamActorTests {
    func lossyStore(loss: Double = 0.1, boxSize: Int = 1024) -> InMemoryBoxStore {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = boxSize
        configuration.writeLoss = loss
        configuration.readLoss = loss
        configuration.meanLatency = .milliseconds(2)
        configuration.waitTimeout = .milliseconds(500)
        configuration.seed = 42
        return InMemoryBoxStore(configuration: configuration)
    }

    func readAll(_ stream: StreamEngine.Stream) async throws -> [UInt8] {
        var received: [UInt8] = []
        for try await chunk in stream.chunks { received += chunk }
        return received
    }

    @Test(.timeLimit(.minutes(1)))
    func exchangeOverALossyStore() async throws {
        let store = lossyStore()
        let address = StreamAddress.generate()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        let toBob = (0..<60_000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let toAlice = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        async let bobReceived = readAll(bob)
        async let aliceReceived = readAll(alice)
        try await alice.write(toBob)
        try await bob.write(toAlice)
        try await alice.sync()
        #expect(await alice.status.writeBuffered == 0)  // everything framed and acknowledged
        try await alice.close()
        try await bob.close()
        #expect(try await bobReceived == toBob)
        #expect(try await aliceReceived == toAlice)
        let statistics = await store.statistics()
        #expect(statistics.lostWrites > 0)  // loss really happened
        #expect(statistics.conflictingWrites == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func halfCloseKeepsTheOtherDirectionOpen() async throws {
        let store = lossyStore(loss: 0)
        let address = StreamAddress.generate()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        try await alice.write(Array("question".utf8))
        try await alice.close()
        #expect(try await readAll(bob) == Array("question".utf8))
        await #expect(throws: StreamError.self) { try await alice.write([1]) }
        try await bob.write(Array("answer".utf8))
        try await bob.close()
        #expect(try await readAll(alice) == Array("answer".utf8))
    }

    @Test(.timeLimit(.minutes(1)))
    func haltWakesWaitersWithHalted() async throws {
        let store = lossyStore(loss: 0)
        let stream = try await Stream.listen(address: .generate(), store: store, configuration: fastConfiguration())
        async let pending: [UInt8]? = stream.read()
        try await Task.sleep(for: .milliseconds(50))
        await stream.halt()
        do {
            _ = try await pending
            Issue.record("read returned after halt")
        } catch let error as StreamError {
            #expect(error.code == .halted)
        }
    }

    /// A waiting call whose task is cancelled throws `CancellationError`, whether the
    /// cancellation comes before it parks, while it parks, or after.
    @Test(.timeLimit(.minutes(1)))
    func aCancelledWaitThrowsCancellationError() async throws {
        let store = lossyStore(loss: 0)
        let stream = try await Stream.listen(address: .generate(), store: store, configuration: fastConfiguration())
        for round in 0..<200 {
            let read = Task { try await stream.read() }
            for _ in 0..<(round % 4) { await Task.yield() }
            read.cancel()
            await #expect(throws: CancellationError.self) { _ = try await read.value }
        }
        await stream.halt()
    }

    /// Many callers waiting on one stream at once, parked while its steps run on other tasks,
    /// are all woken with the bytes.
    @Test(.timeLimit(.minutes(1)))
    func manyConcurrentWaitersAreAllWoken() async throws {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = 1024
        let store = InMemoryBoxStore(configuration: configuration)  // inline completions
        let address = StreamAddress.generate()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        let message = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 11) }
        try await withThrowingTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<200 {
                group.addTask { try await bob.read(from: 0, maxLength: 16) ?? [] }
            }
            group.addTask {
                try await alice.write(message)
                try await alice.sync()
                return Array(message.prefix(16))
            }
            for try await bytes in group { #expect(bytes == Array(message.prefix(16))) }
        }
        await alice.halt()
        await bob.halt()
    }

    @Test(.timeLimit(.minutes(1)))
    func restoredStreamContinuesWhereItStopped() async throws {
        let store = lossyStore(loss: 0.05)
        let address = StreamAddress.generate()
        let journal = InMemoryJournal()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration(), persistence: journal)
        await journal.setInitial(await alice.checkpoint().encoded())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        let first = Array(repeating: UInt8(1), count: 10_000)
        let second = Array(repeating: UInt8(2), count: 10_000)
        try await alice.write(first)  // returns only when durable in the journal
        await alice.halt()
        // Restore from the initial snapshot plus the journal (encoded and decoded, as on disk).
        let initial = try #require(await journal.initial)
        let records = try await journal.records.map { bytes throws(StreamError) in try CheckpointRecord(encoded: bytes) }
        #expect(!records.isEmpty)
        let restored = try await Stream.restore(
            checkpoint: try StreamCheckpoint(encoded: initial), journal: records, store: store,
            configuration: fastConfiguration(), persistence: journal)
        try await restored.write(second)
        try await restored.close()
        #expect(try await readAll(bob) == first + second)
    }

    @Test func restoreOnAStoreWithAnotherBoxSizeFails() async throws {
        let stream = try await Stream.listen(address: .generate(), store: lossyStore(loss: 0, boxSize: 1024))
        let checkpoint = await stream.checkpoint()
        await stream.halt()
        do {
            _ = try await Stream.restore(checkpoint: checkpoint, store: lossyStore(loss: 0, boxSize: 2048))
            Issue.record("restored with another box size")
        } catch let error as StreamError {
            #expect(error.code == .geometryChanged)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func multicastWriterAndTwoReaders() async throws {
        let store = lossyStore(loss: 0.1)
        let address = StreamAddress.generate(mode: .multicast)
        let writer = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let readOnly = try await address.readOnly(store: store)
        let message = (0..<30_000).map { UInt8(truncatingIfNeeded: $0 * 3) }
        try await writer.write(message)
        try await writer.close()  // returns once every frame was verified in the store
        // Readers may join after the writer finished: the boxes are there.
        for _ in 0..<2 {
            let reader = try await Stream.dial(address: readOnly, store: store, configuration: fastConfiguration())
            #expect(try await readAll(reader) == message)
            await #expect(throws: StreamError.self) { try await reader.write([1]) }
        }
        // The read-only address cannot open the channel for writing.
        guard case .multicastReader(_, _, let locator) = readOnly.kind else { return }
        let channel = try await store.channel(.readLocator(locator))
        await #expect(throws: BoxTransportError.self) { try await channel.write(index: 1000, bytes: Array(repeating: 0, count: 1024)) }
    }

    @Test(.timeLimit(.minutes(1)))
    func cborMessagesCrossTheStreamIntact() async throws {
        let store = lossyStore(loss: 0.05, boxSize: 512)
        let address = StreamAddress.generate()
        let alice = CBORMessageStream(try await Stream.listen(address: address, store: store, configuration: fastConfiguration()))
        let bob = CBORMessageStream(try await Stream.dial(address: address, store: store, configuration: fastConfiguration()))
        let messages: [CBORValue] = (0..<20).map { n in
            .textMap(["n": .unsigned(UInt64(n)), "blob": .bytes(Array(repeating: UInt8(n), count: n * 97))])
        }
        for message in messages { try await alice.send(message) }
        try await alice.stream.close()
        var received: [CBORValue] = []
        while let message = try await bob.receive() { received.append(message) }
        #expect(received == messages)
    }
}

/// An in-memory ``StreamPersistence``: the encoded journal, as a file would hold it.
actor InMemoryJournal: StreamPersistence {
    var initial: [UInt8]?
    var records: [[UInt8]] = []

    func setInitial(_ bytes: [UInt8]) { initial = bytes }

    func persist(_ batch: [CheckpointRecord]) async throws {
        records += batch.map { $0.encoded() }
    }
}
