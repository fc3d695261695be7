import StreamEngine
import StreamEngineTesting
import Synchronization
import Testing

/// The callback contract of `BoxChannel` (`startWrite`, `startRead`, `BoxOperation`), on
/// `InMemoryBoxStore`'s native implementation and on the task-backed one.
@Suite struct BoxChannelCallbackTests {
    /// Every outcome a completion received, in order.
    final class Outcomes<Value: Sendable>: Sendable {
        private let results = Mutex<[Result<Value, BoxTransportError>]>([])
        var completion: @Sendable (Result<Value, BoxTransportError>) -> Void { { result in self.results.withLock { $0.append(result) } } }
        var all: [Result<Value, BoxTransportError>] { results.withLock { $0 } }
        var count: Int { results.withLock { $0.count } }
    }

    func store(boxSize: Int = 64, waitTimeout: Duration = .seconds(30), latency: Duration = .zero) -> InMemoryBoxStore {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = boxSize
        configuration.waitTimeout = waitTimeout
        configuration.meanLatency = latency
        return InMemoryBoxStore(configuration: configuration)
    }

    func box(_ byte: UInt8, _ size: Int = 64) -> [UInt8] { [UInt8](repeating: byte, count: size) }

    func code<Value>(_ result: Result<Value, BoxTransportError>?) -> BoxTransportError.Code? {
        guard case .failure(let error) = result else { return nil }
        return error.code
    }

    /// Writes, reads of written boxes, polls of empty ones and refused operations all complete
    /// inside the call, exactly once; cancelling them afterwards changes nothing.
    @Test func anInstantStoreCompletesInline() async throws {
        let store = store()
        let channel = try await store.channel(.writerSeed(box(1, 32)))
        let written = Outcomes<Void>()
        let operation = channel.startWrite(index: 0, bytes: box(7), completion: written.completion)
        #expect(written.count == 1)
        #expect((try? written.all.first?.get()) != nil)
        operation.cancel()
        #expect(written.count == 1)

        let read = Outcomes<[UInt8]?>()
        channel.startRead(index: 0, mode: .wait, completion: read.completion).cancel()
        channel.startRead(index: 1, mode: .poll, completion: read.completion).cancel()
        #expect(read.count == 2)
        #expect(try read.all[0].get() == box(7))
        #expect(try read.all[1].get() == nil)

        // Refusals are completions too: a wrong size, a different box, a read-only channel.
        let refused = Outcomes<Void>()
        _ = channel.startWrite(index: 1, bytes: box(7, 63), completion: refused.completion)
        _ = channel.startWrite(index: 0, bytes: box(8), completion: refused.completion)
        let locator = try await store.readLocator(forWriterSeed: box(1, 32))
        let reader = try await store.channel(.readLocator(locator))
        _ = reader.startWrite(index: 2, bytes: box(7), completion: refused.completion)
        #expect(refused.all.map { code($0) } == [.invalidPayloadSize, .alreadyExists, .permissionDenied])
        let viaLocator = Outcomes<[UInt8]?>()
        _ = reader.startRead(index: 0, mode: .poll, completion: viaLocator.completion)
        #expect(try viaLocator.all.first?.get() == box(7))
    }

    /// A waiting read of an empty box is parked and completed by the write that lands the box,
    /// inside that write's call and before the write's own completion; both exactly once.
    @Test func aParkedReadIsCompletedByTheWriteThatLandsItsBox() async throws {
        let store = store()
        let writer = try await store.channel(.writerSeed(box(2, 32)))
        let reader = try await store.channel(.readLocator(try await store.readLocator(forWriterSeed: box(2, 32))))
        let first = Outcomes<[UInt8]?>()
        let second = Outcomes<[UInt8]?>()
        let readOperation = reader.startRead(index: 5, mode: .wait, completion: first.completion)
        _ = writer.startRead(index: 5, mode: .wait, completion: second.completion)
        let other = Outcomes<[UInt8]?>()
        _ = reader.startRead(index: 6, mode: .wait, completion: other.completion)
        #expect(first.count == 0 && second.count == 0)

        let order = Mutex<[String]>([])
        _ = writer.startWrite(index: 5, bytes: box(9)) { _ in order.withLock { $0.append("write") } }
        #expect(try first.all.first?.get() == box(9))
        #expect(try second.all.first?.get() == box(9))
        #expect(other.count == 0, "a read of another box stays parked")
        #expect(order.withLock { $0 } == ["write"])
        readOperation.cancel()  // after completion: nothing
        #expect(first.count == 1)

        _ = writer.startWrite(index: 6, bytes: box(10)) { _ in }
        #expect(try other.all.first?.get() == box(10))
        #expect(other.count == 1)
    }

    /// Cancelling a parked read completes it at once with `cancelled`, once; a second cancel and
    /// the box's later write do not complete it again, and the store answers later reads.
    @Test func cancellingAParkedReadCompletesItOnce() async throws {
        let store = store()
        let channel = try await store.channel(.writerSeed(box(3, 32)))
        let read = Outcomes<[UInt8]?>()
        let operation = channel.startRead(index: 2, mode: .wait, completion: read.completion)
        #expect(read.count == 0)
        operation.cancel()
        #expect(read.count == 1)
        #expect(code(read.all.first) == .cancelled)
        operation.cancel()
        _ = channel.startWrite(index: 2, bytes: box(4)) { _ in }
        #expect(read.count == 1)
        let again = Outcomes<[UInt8]?>()
        _ = channel.startRead(index: 2, mode: .wait, completion: again.completion)
        #expect(try again.all.first?.get() == box(4))
    }

    /// Cancels racing the writes that land the same boxes, from two threads: every read
    /// completes exactly once, with the box's bytes or with `cancelled`.
    @Test(.timeLimit(.minutes(1)))
    func cancelsRacingWritesCompleteEveryReadOnce() async throws {
        let store = store(boxSize: 16)
        let channel = try await store.channel(.writerSeed(box(6, 32)))
        let count = 2000
        let reads = (0..<count).map { _ in Outcomes<[UInt8]?>() }
        let operations = (0..<count).map { channel.startRead(index: UInt64($0), mode: .wait, completion: reads[$0].completion) }
        #expect(reads.allSatisfy { $0.count == 0 })
        async let written: Void = { for index in 0..<count { _ = channel.startWrite(index: UInt64(index), bytes: box(UInt8(truncatingIfNeeded: index), 16)) { _ in } } }()
        async let cancelled: Void = { for operation in operations { operation.cancel() } }()
        _ = await (written, cancelled)
        for operation in operations { operation.cancel() }
        var landed = 0
        for (index, read) in reads.enumerated() {
            #expect(read.count == 1)
            switch read.all.first {
            case .success(let bytes)?:
                #expect(bytes == box(UInt8(truncatingIfNeeded: index), 16))
                landed += 1
            case .failure(let error)?:
                #expect(error.code == .cancelled)
            case nil:
                break
            }
        }
        #expect(landed <= count)
    }

    /// A parked read that nobody writes is answered "not yet written" by the store's sweeper
    /// after `waitTimeout`, exactly once, and cancelling it then does nothing.
    @Test(.timeLimit(.minutes(1)))
    func aParkedReadTimesOutOnce() async throws {
        let store = store(waitTimeout: .milliseconds(100))
        let channel = try await store.channel(.writerSeed(box(4, 32)))
        let read = Outcomes<[UInt8]?>()
        let operation = channel.startRead(index: 0, mode: .wait, completion: read.completion)
        while read.count == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(try read.all.first?.get() == .some(nil))
        operation.cancel()
        _ = channel.startWrite(index: 0, bytes: box(1)) { _ in }
        try await Task.sleep(for: .milliseconds(150))
        #expect(read.count == 1)
    }

    /// With latency the store completes later, from a task; cancelling during the latency, or
    /// while the read is then parked, completes it once with `cancelled`.
    @Test(.timeLimit(.minutes(1)))
    func aStoreWithLatencyCompletesLaterAndCancelsOnce() async throws {
        let store = store(latency: .milliseconds(20))
        let channel = try await store.channel(.writerSeed(box(5, 32)))
        let written = Outcomes<Void>()
        _ = channel.startWrite(index: 0, bytes: box(6), completion: written.completion)
        while written.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect((try? written.all[0].get()) != nil)

        let cancelledEarly = Outcomes<[UInt8]?>()
        channel.startRead(index: 1, mode: .wait, completion: cancelledEarly.completion).cancel()
        let parked = Outcomes<[UInt8]?>()
        let parkedOperation = channel.startRead(index: 2, mode: .wait, completion: parked.completion)
        try await Task.sleep(for: .milliseconds(300))  // past the latency (mean 20 ms): parked
        #expect(parked.count == 0)
        parkedOperation.cancel()
        while cancelledEarly.count == 0 || parked.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(cancelledEarly.count == 1 && parked.count == 1)
        #expect(code(cancelledEarly.all.first) == .cancelled)
        #expect(code(parked.all.first) == .cancelled)
    }

    /// `BoxOperation.task` completes once with the body's outcome, classifying its errors, and
    /// cancelling it cancels the task; the async form throws `cancelled` when its task is
    /// cancelled.
    @Test(.timeLimit(.minutes(1)))
    func taskBackedOperationsCompleteOnce() async throws {
        let done = Outcomes<Int>()
        _ = BoxOperation.task({ 42 }, completion: done.completion)
        let failed = Outcomes<Int>()
        _ = BoxOperation.task({ throw BoxTransportError(.unavailable, "down") }, completion: failed.completion)
        let cancelled = Outcomes<Int>()
        let sleeper = BoxOperation.task({ try await Task.sleep(for: .seconds(30)); return 1 }, completion: cancelled.completion)
        sleeper.cancel()
        while done.count == 0 || failed.count == 0 || cancelled.count == 0 { try await Task.sleep(for: .milliseconds(5)) }
        sleeper.cancel()
        try await Task.sleep(for: .milliseconds(20))
        #expect(try done.all.map { try $0.get() } == [42])
        #expect(failed.all.map { code($0) } == [.unavailable])
        #expect(cancelled.all.map { code($0) } == [.cancelled])

        let waiting = Task { try await BoxOperation.value { (completion: @escaping @Sendable (Result<Int, BoxTransportError>) -> Void) in
            BoxOperation.task({ try await Task.sleep(for: .seconds(30)); return 1 }, completion: completion)
        } }
        try await Task.sleep(for: .milliseconds(20))
        waiting.cancel()
        await #expect { _ = try await waiting.value } throws: { ($0 as? BoxTransportError)?.code == .cancelled }
    }

    /// A `Stream` pair over an instant store (every operation through the callbacks, most
    /// completing inline) moves data both ways at once, and closes.
    @Test(.timeLimit(.minutes(1)))
    func aStreamPairExchangesDataThroughInlineCompletions() async throws {
        let store = store(boxSize: 512)
        let address = StreamAddress.generate()
        let alice = try await Stream.listen(address: address, store: store, configuration: fastConfiguration())
        let bob = try await Stream.dial(address: address, store: store, configuration: fastConfiguration())
        let toBob = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        let toAlice = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        async let bobReceived = Self.readAll(bob)
        async let aliceReceived = Self.readAll(alice)
        async let aliceWrote: Void = { try await alice.write(toBob); try await alice.close() }()
        try await bob.write(toAlice)
        try await bob.close()
        try await aliceWrote
        #expect(try await bobReceived == toBob)
        #expect(try await aliceReceived == toAlice)
        #expect(await store.statistics().conflictingWrites == 0)
        // Halting with reads still parked in the store cancels them; the stream stays quiet.
        await alice.halt()
        await bob.halt()
        await #expect(throws: StreamError.self) { try await alice.write([1]) }
    }

    static func readAll(_ stream: StreamEngine.Stream) async throws -> [UInt8] {
        var received: [UInt8] = []
        for try await chunk in stream.chunks { received += chunk }
        return received
    }
}
