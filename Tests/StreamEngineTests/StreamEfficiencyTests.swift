import CBOR
import StreamEngine
import StreamEngineTesting
import Testing

/// Issue 9's `Stream` fixes: partial writes report what was accepted, the store times reads
/// out without a task each, and CBOR messages split into many chunks arrive intact.
@Suite struct StreamEfficiencyTests {
    func store(boxSize: Int = 512, waitTimeout: Duration = .seconds(30)) -> InMemoryBoxStore {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = boxSize
        configuration.waitTimeout = waitTimeout
        return InMemoryBoxStore(configuration: configuration)
    }

    /// Defect 5: a cancelled write that the stream had partly accepted says how much, and
    /// exactly that much reaches the peer.
    @Test(.timeLimit(.minutes(1)))
    func cancelledWriteReportsTheAcceptedCount() async throws {
        let store = store()
        let address = StreamAddress.generate()
        var configuration = fastConfiguration()
        configuration.sendWindow = 2
        configuration.maxWriteBuffer = 1000
        let writer = try await Stream.listen(address: address, store: store, configuration: configuration)
        let message = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        // No reader yet: nothing is acknowledged, so the write fills the window and the buffer and waits.
        let write = Task { try await writer.write(message) }
        while await writer.status.writeBuffered < 1000 { try await Task.sleep(for: .milliseconds(5)) }
        write.cancel()
        let accepted: Int
        do {
            try await write.value
            Issue.record("the write finished although nothing was acknowledged")
            return
        } catch let error as PartialWriteError {
            #expect(error.underlying is CancellationError)
            #expect(error.requestedCount == message.count)
            accepted = error.acceptedCount
        }
        #expect(accepted >= 1000 && accepted < message.count)
        #expect(await writer.status.bytesWritten == UInt64(accepted))

        let reader = try await Stream.dial(address: address, store: store, configuration: configuration)
        try await writer.close()
        var received: [UInt8] = []
        while let chunk = try await reader.read() { received += chunk }
        #expect(received == Array(message.prefix(accepted)))
    }

    /// A write that fails before the stream accepts anything throws the stream's error itself.
    @Test(.timeLimit(.minutes(1)))
    func writeAfterCloseAcceptsNothing() async throws {
        let store = store()
        let address = StreamAddress.generate()
        let writer = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let reader = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        try await writer.close()
        await #expect(throws: StreamError.self) { try await writer.write(Array(repeating: 1, count: 10_000)) }
        #expect(try await reader.read() == nil)
    }

    /// Waiting reads time out after `waitTimeout`, every one of them, and a write answers
    /// the reads that wait on its box at once.
    @Test(.timeLimit(.minutes(1)))
    func waitingReadsTimeOutAndWritesAnswerThem() async throws {
        let store = store(boxSize: 256, waitTimeout: .milliseconds(200))
        let channel = try await store.channel(.writerSeed(Array(repeating: 7, count: 32)))
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            for index in UInt64(0)..<20 { group.addTask { try await channel.read(index: index, mode: .wait) } }
            for try await result in group { #expect(result == nil) }
        }
        let waited = clock.now - start
        // Well under the store's default of 30 s, with room for a loaded machine (the whole
        // suite runs in parallel with 1,000 simulation seeds; 8 s was seen).
        #expect(waited >= .milliseconds(200) && waited < .seconds(25))

        let box = Array(repeating: UInt8(5), count: 256)
        async let answered = channel.read(index: 100, mode: .wait)
        try await Task.sleep(for: .milliseconds(20))
        try await channel.write(index: 100, bytes: box)
        #expect(try await answered == box)
        // The store keeps working after the queue of deadlines emptied.
        let again = clock.now
        #expect(try await channel.read(index: 101, mode: .wait) == nil)
        #expect(clock.now - again >= .milliseconds(200))
    }

    /// Cancelling a waiting read ends it at once with `cancelled` (a `BoxTransportError`, as
    /// every box operation's failure), long before its timeout, and the store still answers
    /// later reads of that box.
    @Test(.timeLimit(.minutes(1)))
    func cancelledWaitingReadEndsAtOnce() async throws {
        let store = store(boxSize: 256, waitTimeout: .seconds(30))
        let channel = try await store.channel(.writerSeed(Array(repeating: 8, count: 32)))
        let read = Task { try await channel.read(index: 3, mode: .wait) }
        try await Task.sleep(for: .milliseconds(50))
        let clock = ContinuousClock()
        let start = clock.now
        read.cancel()
        await #expect { _ = try await read.value } throws: { ($0 as? BoxTransportError)?.code == .cancelled }
        #expect(clock.now - start < .seconds(5))
        let box = Array(repeating: UInt8(9), count: 256)
        try await channel.write(index: 3, bytes: box)
        #expect(try await channel.read(index: 3, mode: .wait) == box)
    }

    /// A message far larger than a box, sent in one write and read in many chunks, and many
    /// small messages back to back: the resumable scanner finds every boundary.
    @Test(.timeLimit(.minutes(1)))
    func cborMessagesSplitAcrossManyChunks() async throws {
        let store = store(boxSize: 300)
        let address = StreamAddress.generate()
        let alice = CBORMessageStream(try await Stream.listen(address: address, store: store, configuration: fastConfiguration()))
        let bob = CBORMessageStream(try await Stream.dial(address: address, store: store, configuration: fastConfiguration()),
                                    maxMessageSize: 200_000)
        var messages: [CBORValue] = [.textMap(["big": .bytes((0..<150_000).map { UInt8(truncatingIfNeeded: $0) })])]
        messages += (0..<50).map { .array([.unsigned(UInt64($0)), .text(String(repeating: "x", count: $0))]) }
        async let received: [CBORValue] = {
            var all: [CBORValue] = []
            while let message = try await bob.receive() { all.append(message) }
            return all
        }()
        for message in messages { try await alice.send(message) }
        try await alice.stream.close()
        #expect(try await received == messages)
    }

    /// A message over the limit is refused as soon as its head declares it, not after buffering it.
    @Test(.timeLimit(.minutes(1)))
    func cborMessageOverTheLimitIsRefused() async throws {
        let store = store()
        let address = StreamAddress.generate()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = CBORMessageStream(try await Stream.dial(address: address, store: store, configuration: fastConfiguration()),
                                    maxMessageSize: 1000)
        try await alice.write(CBORValue.bytes(Array(repeating: 1, count: 5000)).encoded().prefix(100).map { $0 })
        await #expect(throws: StreamError.self) { _ = try await bob.receive() }
    }
}
