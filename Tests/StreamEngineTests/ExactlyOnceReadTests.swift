@testable import StreamEngine
import StreamEngineTesting
import Testing

/// Reads by offset with ``StreamMachine/peek(from:maxLength:)`` and
/// ``StreamMachine/consume(through:now:)``: exactly-once delivery across crashes.
@Suite struct ExactlyOnceReadTests {
    let message = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 31 + 7) }

    /// A pair where the listener sent `message` and the dialer received all of it, unconsumed.
    func delivered(configuration: StreamConfiguration = .init()) throws -> MachinePair {
        var pair = try MachinePair(configuration: configuration)
        try pair.ends[0].appWrite(message, now: pair.now)
        pair.settle()
        for _ in 0..<20 where pair.ends[1].checkpoint.deliveredBytes < message.count {
            pair.advance(by: .milliseconds(200))
        }
        return pair
    }

    func invalidOffset(_ body: () throws(StreamError) -> Void) -> StreamError? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    @Test func peekReturnsBytesAtAnyValidOffsetWithoutConsuming() throws {
        var pair = try delivered()
        let reader = pair.ends[1]
        #expect(reader.checkpoint.deliveredBytes == 3000 && reader.checkpoint.bytesConsumed == 0)
        #expect(try reader.peek(from: 0, maxLength: 10) == Array(message[0..<10]))
        #expect(try reader.peek(from: 1234, maxLength: 100) == Array(message[1234..<1334]))
        #expect(try reader.peek(from: 2990, maxLength: 100) == Array(message[2990...]))
        #expect(try reader.peek(from: 0, maxLength: 1 << 20) == message)
        #expect(try reader.peek(from: 3000, maxLength: 10) == [])
        #expect(try reader.peek(from: 5, maxLength: 0) == [])
        #expect(reader.checkpoint.bytesConsumed == 0 && reader.checkpoint.readableCount == 3000)

        // After a consume, offsets are still stream offsets; consumed ones are refused.
        try pair.ends[1].consume(through: 1000, now: pair.now)
        #expect(try pair.ends[1].peek(from: 1000, maxLength: 5) == Array(message[1000..<1005]))
        #expect(try pair.ends[1].peek(from: 2000, maxLength: 5) == Array(message[2000..<2005]))
        let error = invalidOffset { () throws(StreamError) in _ = try pair.ends[1].peek(from: 999, maxLength: 5) }
        #expect(error?.code == .invalidOffset)
        #expect(error?.message.contains("1000...3000") == true, "\(String(describing: error))")
    }

    @Test func peekBeyondDeliveredIsEmptyNotAnError() throws {
        let pair = try delivered()
        #expect(try pair.ends[1].peek(from: 3001, maxLength: 10) == [])
        #expect(try pair.ends[1].peek(from: UInt64.max, maxLength: 10) == [])
        // A stream end that never received anything.
        #expect(try pair.ends[0].peek(from: 0, maxLength: 10) == [])
        #expect(try pair.ends[0].peek(from: 77, maxLength: 10) == [])
    }

    @Test func consumeIsIdempotent() throws {
        var pair = try delivered()
        let sequence = try pair.ends[1].consume(through: 400, now: pair.now)
        #expect(sequence == pair.ends[1].lastSequence)
        #expect(pair.ends[1].checkpoint.bytesConsumed == 400)
        // Confirming the same or a lower offset again records nothing.
        #expect(try pair.ends[1].consume(through: 400, now: pair.now) == sequence)
        #expect(try pair.ends[1].consume(through: 100, now: pair.now) == sequence)
        #expect(try pair.ends[1].consume(through: 0, now: pair.now) == sequence)
        #expect(pair.ends[1].checkpoint.bytesConsumed == 400 && pair.ends[1].lastSequence == sequence)
        // Consuming further records one more change.
        #expect(try pair.ends[1].consume(through: 3000, now: pair.now) == sequence + 1)
        #expect(pair.ends[1].checkpoint.readableCount == 0)
    }

    @Test func consumeBeyondDeliveredFailsAndChangesNothing() throws {
        var pair = try delivered()
        let before = pair.ends[1].checkpoint
        let error = invalidOffset { () throws(StreamError) in _ = try pair.ends[1].consume(through: 3001, now: pair.now) }
        #expect(error?.code == .invalidOffset)
        #expect(error?.message.contains("0...3000") == true, "\(String(describing: error))")
        #expect(pair.ends[1].checkpoint == before)
        #expect(pair.ends[1].failure == nil)
    }

    @Test func appReadIsPeekThenConsume() throws {
        var pair = try delivered()
        #expect(pair.ends[1].appRead(maxLength: 1000, now: pair.now) == Array(message[0..<1000]))
        #expect(pair.ends[1].checkpoint.bytesConsumed == 1000)
        #expect(try pair.ends[1].peek(from: 1000, maxLength: 3) == Array(message[1000..<1003]))
        #expect(pair.ends[1].appRead(maxLength: 1 << 20, now: pair.now) == Array(message[1000...]))
        #expect(pair.ends[1].appRead(maxLength: 1 << 20, now: pair.now) == [])
    }

    @Test func consumeFreesTheReadBufferSoReadingResumes() throws {
        var configuration = StreamConfiguration()
        configuration.maxReadBuffer = 600
        var pair = try MachinePair(configuration: configuration)
        let long = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * 13) }
        try pair.ends[0].appWrite(long, now: pair.now)
        try pair.ends[0].appClose(now: pair.now)
        // Unconsumed, the buffer fills and reading stops; peeking does not change that.
        pair.settle()
        for _ in 0..<60 { pair.advance(by: .seconds(1)) }
        let stalled = pair.ends[1].checkpoint.deliveredBytes
        #expect(stalled < UInt64(long.count))
        #expect(pair.ends[1].checkpoint.readableCount >= configuration.maxReadBuffer)
        #expect(try pair.ends[1].peek(from: 0, maxLength: 1 << 20) == Array(long.prefix(Int(stalled))))
        for _ in 0..<60 { pair.advance(by: .seconds(1)) }
        #expect(pair.ends[1].checkpoint.deliveredBytes == stalled, "read on with a full buffer")

        // Consuming as the app goes lets everything through.
        var received: [UInt8] = []
        for _ in 0..<2000 where !pair.ends[1].isReadFinished {
            received += try pair.ends[1].peek(from: UInt64(received.count), maxLength: 1 << 20)
            try pair.ends[1].consume(through: UInt64(received.count), now: pair.now)
            pair.advance(by: .milliseconds(500))
        }
        #expect(received == long)
        #expect(pair.ends[1].isReadFinished)
    }

    /// The reader receives and processes everything but crashes before its `consumed` record
    /// (and even its `frameReceived` records) are durable: the restored stream offers the same
    /// bytes at the same offsets, and an app that kept its offset reads on without duplicates.
    @Test func crashBeforeDurableConsumeOffersTheBytesAgainAtTheSameOffsets() throws {
        var configuration = StreamConfiguration()
        configuration.sendWindow = 32  // everything goes out although the reader acknowledges nothing
        var pair = try MachinePair(configuration: configuration)
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        pair.ends[1] = try StreamMachine(
            address: address, role: .dialer, boxSize: 512, configuration: configuration, durability: .explicit,
            now: pair.now, randomSeed: 2)
        let initial = pair.ends[1].checkpoint.encoded()
        var persisted: [[UInt8]] = []
        func restoreReader() throws -> StreamMachine {
            let records = try persisted.map { bytes throws(StreamError) in try CheckpointRecord(encoded: bytes) }
            return try StreamMachine(
                restoring: try StreamCheckpoint(encoded: initial), journal: records, boxSize: 512,
                configuration: configuration, durability: .explicit, now: pair.now, randomSeed: 3)
        }

        try pair.ends[0].appWrite(message, now: pair.now)
        pair.settle()
        // The app processes the first 2000 bytes and consumes them; nothing is durable yet.
        var app = try pair.ends[1].peek(from: 0, maxLength: 2000)
        #expect(app == Array(message[0..<2000]))
        _ = try pair.ends[1].consume(through: 2000, now: pair.now)
        _ = pair.ends[1].takeJournal()  // lost in the crash

        // Crash: nothing survived, not even the received frames.
        pair.ends[1] = try restoreReader()
        #expect(pair.ends[1].checkpoint.bytesConsumed == 0 && pair.ends[1].checkpoint.deliveredBytes == 0)
        #expect(try pair.ends[1].peek(from: UInt64(app.count), maxLength: 100) == [])  // beyond delivered: empty
        pair.settle()  // the restored reader reads the same boxes again
        #expect(pair.ends[1].checkpoint.deliveredBytes == 3000)
        #expect(try pair.ends[1].peek(from: 0, maxLength: 2000) == app)  // the same bytes at the same offsets
        app += try pair.ends[1].peek(from: UInt64(app.count), maxLength: 1 << 20)
        #expect(app == message)

        // This time the consume is durable before the crash.
        let sequence = try pair.ends[1].consume(through: UInt64(app.count), now: pair.now)
        let journal = pair.ends[1].takeJournal()
        #expect(journal.last?.sequence == sequence)
        persisted += journal.map { $0.encoded() }
        pair.ends[1].markDurable(through: sequence, now: pair.now)
        pair.ends[1] = try restoreReader()
        #expect(pair.ends[1].checkpoint.bytesConsumed == 3000)
        #expect(try pair.ends[1].peek(from: 3000, maxLength: 100) == [])
        #expect(invalidOffset { () throws(StreamError) in _ = try pair.ends[1].peek(from: 0, maxLength: 100) }?.code == .invalidOffset)
    }

    /// A checkpoint taken between peeks and consumes, through its CBOR form, restores the read
    /// position exactly.
    @Test func checkpointRestoresTheReadPosition() throws {
        var pair = try delivered()
        try pair.ends[1].consume(through: 1500, now: pair.now)
        let encoded = pair.ends[1].checkpoint.encoded()
        let restored = try StreamMachine(restoring: try StreamCheckpoint(encoded: encoded), boxSize: 512, now: pair.now, randomSeed: 9)
        #expect(restored.checkpoint.bytesConsumed == 1500 && restored.checkpoint.deliveredBytes == 3000)
        #expect(try restored.peek(from: 1500, maxLength: 1 << 20) == Array(message[1500...]))
        #expect(invalidOffset { () throws(StreamError) in _ = try restored.peek(from: 1499, maxLength: 1) }?.code == .invalidOffset)
    }
}

/// ``Stream/read(from:maxLength:)`` and ``Stream/consume(through:)`` on the real clock.
@Suite struct ExactlyOnceStreamTests {
    func store(loss: Double) -> InMemoryBoxStore {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = 512
        configuration.writeLoss = loss
        configuration.readLoss = loss
        configuration.meanLatency = .milliseconds(2)
        configuration.waitTimeout = .milliseconds(500)
        configuration.seed = 7
        return InMemoryBoxStore(configuration: configuration)
    }

    /// Reads from `offset` to the end in chunks, consuming as it goes; returns the bytes.
    func readToEnd(_ stream: StreamEngine.Stream, from offset: UInt64) async throws -> [UInt8] {
        var received: [UInt8] = []
        while let chunk = try await stream.read(from: offset + UInt64(received.count), maxLength: 700) {
            received += chunk
            try await stream.consume(through: offset + UInt64(received.count))
        }
        return received
    }

    @Test(.timeLimit(.minutes(1)))
    func readFromAndConsumeRoundTrip() async throws {
        let store = store(loss: 0.1)
        let address = StreamAddress.generate()
        var configuration = fastConfiguration()
        configuration.maxReadBuffer = 4096  // the reader must consume to get everything
        let alice = try await Stream.listen(address: address, store: store, configuration: configuration)
        let bob = try await Stream.dial(address: address, store: store, configuration: configuration)
        let message = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 * 11) }
        try await alice.write(message)
        // The FIN is acknowledged only once bob consumed enough to read it.
        async let closed: Void = alice.close()

        // Reading does not consume: the same offset gives the same bytes.
        let first = try #require(try await bob.read(from: 0, maxLength: 100))
        #expect(!first.isEmpty && first == Array(message.prefix(first.count)))
        #expect(try await bob.read(from: 0, maxLength: 100) == first)
        #expect(await bob.status.bytesConsumed == 0)
        try await bob.consume(through: UInt64(first.count))
        try await bob.consume(through: 1)  // already consumed: returns at once
        #expect(await bob.status.bytesConsumed == UInt64(first.count))
        await #expect(throws: StreamError.self) { try await bob.read(from: 0) }

        let rest = try await readToEnd(bob, from: UInt64(first.count))
        #expect(first + rest == message)
        try await closed
        #expect(await bob.status.isReadFinished)
        #expect(try await bob.read(from: UInt64(message.count)) == nil)
        do {
            _ = try await bob.read(from: UInt64(message.count) + 1)
            Issue.record("read beyond the end of the stream")
        } catch let error as StreamError {
            #expect(error.code == .invalidOffset)
        }
        do {
            try await bob.consume(through: UInt64(message.count) + 1)
            Issue.record("consumed beyond the end of the stream")
        } catch let error as StreamError {
            #expect(error.code == .invalidOffset)
        }
    }

    /// The reader persists its journal and crashes after processing bytes it consumed durably
    /// and bytes it did not: the restored stream resumes at the durable consume, offers the
    /// rest at the same offsets, and the app reads on from its own offset without duplicates.
    @Test(.timeLimit(.minutes(1)))
    func restoredReaderResumesAtTheAppsOffset() async throws {
        let store = store(loss: 0.05)
        let address = StreamAddress.generate()
        let journal = InMemoryJournal()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration(), persistence: journal)
        await journal.setInitial(await bob.checkpoint().encoded())
        let message = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * 5 + 1) }
        try await alice.write(message)
        async let closed: Void = alice.close()

        // The app processes 6,000 bytes and consumes them durably, then 4,000 more it does not consume.
        var app: [UInt8] = []
        while app.count < 6000, let chunk = try await bob.read(from: UInt64(app.count), maxLength: 6000 - app.count) {
            app += chunk
        }
        try await bob.consume(through: 6000)
        while app.count < 10_000, let chunk = try await bob.read(from: UInt64(app.count), maxLength: 10_000 - app.count) {
            app += chunk
        }
        await bob.halt()

        let initial = try #require(await journal.initial)
        let records = try await journal.records.map { bytes throws(StreamError) in try CheckpointRecord(encoded: bytes) }
        let restored = try await Stream.restore(
            checkpoint: try StreamCheckpoint(encoded: initial), journal: records, store: store,
            configuration: fastConfiguration(), persistence: journal)
        #expect(await restored.status.bytesConsumed == 6000)
        // The unconsumed bytes come again, identical, at the same offsets.
        let again = try #require(try await restored.read(from: 6000, maxLength: 4000))
        #expect(!again.isEmpty && again == Array(app[6000..<(6000 + again.count)]))
        // The app reads on from its own offset; consuming through it waits for bytes not yet back.
        try await restored.consume(through: UInt64(app.count))
        #expect(await restored.status.bytesConsumed == UInt64(app.count))
        app += try await readToEnd(restored, from: UInt64(app.count))
        #expect(app == message)
        try await closed
    }
}
