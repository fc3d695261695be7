/// Persists a stream's journal, so that what the stream promises survives a crash.
///
/// Store the stream's ``Stream/checkpoint()`` once right after opening it (it holds the keys),
/// then every batch of records this receives; restore with that checkpoint and the records
/// (``Stream/restore(checkpoint:journal:store:configuration:persistence:)``). Fold records into a
/// newer checkpoint at any time to compact: ``StreamCheckpoint/replay(_:)`` skips those already
/// folded in. streamd implements this over SQLite; tests use an in-memory log.
public protocol StreamPersistence: Sendable {
    /// Durably appends journal records, in order; returns only once they survive power loss.
    func persist(_ records: [CheckpointRecord]) async throws
}

/// A reliable, encrypted byte stream over a ``BoxStore``: the async face of ``StreamMachine``.
///
/// `Stream` starts the machine's transport operations through the channels' completion
/// callbacks (no task per operation: an operation the store answers at once completes within
/// the step that started it), runs its timers on a real clock, persists its journal when given
/// a ``StreamPersistence``, and suspends callers until their condition holds. Every wait
/// re-checks state inside the actor, so no wake-up is lost.
///
/// ```swift
/// let address = StreamAddress.generate()
/// let alice = try await Stream.listen(address: address, store: store)
/// let bob = try await Stream.dial(address: address, store: store)
/// try await alice.write(Array("hello".utf8))
/// let chunk = try await bob.read()   // [104, 101, 108, 108, 111]
/// ```
public actor Stream {
    private var machine: StreamMachine
    private let outbound: (any BoxChannel)?
    private let inbound: (any BoxChannel)?
    private let persistence: (any StreamPersistence)?
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant

    /// The operations started and not completed yet that can be cancelled (one that completed
    /// inside its `start…` call is not kept).
    private var operations = OperationSlots<BoxOperation>(span: 64)
    /// Where operations' completions wait for the actor; see ``CompletionInbox``.
    private let inbox = CompletionInbox()
    /// The batch of completions being handed to the machine (its storage is reused).
    private var completions: [CompletionInbox.Completion] = []
    /// The machine's next deadline, re-armed in place whenever it moves.
    private let timer = ReArmableTimer()
    /// The one task that runs the machine's timers when ``timer`` fires.
    private var timerTask: Task<Void, Never>?
    /// When ``timer`` is armed to fire, if it is.
    private var timerArmedAt: StreamTime?
    private var persisting = false
    private var persistenceFailure: StreamError?
    /// Suspended callers, each with the condition it waits for.
    private var waiters: [Waiter] = []

    /// A suspended caller of ``waitUntil(allowFailure:_:)``.
    private struct Waiter {
        /// What the caller waits for; it is woken once this holds or the stream stops.
        var condition: (isolated Stream) -> Bool
        var continuation: CheckedContinuation<Void, Never>
    }

    // MARK: - Opening

    /// Opens the listening end (the one that created the address) of a stream.
    public static func listen(
        address: StreamAddress, store: any BoxStore, configuration: StreamConfiguration = .init(),
        persistence: (any StreamPersistence)? = nil
    ) async throws -> Stream {
        try await open(address: address, role: .listener, store: store, configuration: configuration, persistence: persistence)
    }

    /// Opens the dialing end of a stream; a multicast reader dials with a read-only address.
    public static func dial(
        address: StreamAddress, store: any BoxStore, configuration: StreamConfiguration = .init(),
        persistence: (any StreamPersistence)? = nil
    ) async throws -> Stream {
        try await open(address: address, role: .dialer, store: store, configuration: configuration, persistence: persistence)
    }

    private static func open(
        address: StreamAddress, role: StreamRole, store: any BoxStore, configuration: StreamConfiguration,
        persistence: (any StreamPersistence)?
    ) async throws -> Stream {
        let boxSize = try await store.payloadSize()
        let machine = try StreamMachine(
            address: address, role: role, boxSize: boxSize, configuration: configuration,
            durability: persistence == nil ? .automatic : .explicit, now: .zero, randomSeed: UInt64.random(in: .min ... .max))
        return try await Stream(machine: machine, store: store, persistence: persistence)
    }

    /// Restores a stream from a checkpoint and the journal records persisted after it.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/geometryChanged`` if the store's box size
    ///   differs from the checkpoint's.
    public static func restore(
        checkpoint: StreamCheckpoint, journal: [CheckpointRecord] = [], store: any BoxStore,
        configuration: StreamConfiguration = .init(), persistence: (any StreamPersistence)? = nil
    ) async throws -> Stream {
        let boxSize = try await store.payloadSize()
        let machine = try StreamMachine(
            restoring: checkpoint, journal: journal, boxSize: boxSize, configuration: configuration,
            durability: persistence == nil ? .automatic : .explicit, now: .zero, randomSeed: UInt64.random(in: .min ... .max))
        return try await Stream(machine: machine, store: store, persistence: persistence)
    }

    private init(machine: StreamMachine, store: any BoxStore, persistence: (any StreamPersistence)?) async throws {
        let checkpoint = machine.checkpoint
        if let keys = checkpoint.outbound {
            outbound = try await store.channel(.writerSeed(keys.boxSeed))
        } else {
            outbound = nil
        }
        if let keys = checkpoint.inbound {
            inbound = try await store.channel(keys.channel)
        } else {
            inbound = nil
        }
        self.machine = machine
        self.persistence = persistence
        origin = clock.now
        timerTask = Task { [weak self, ticks = timer.ticks] in
            for await _ in ticks {
                guard let self else { return }
                await self.timerFired()
            }
        }
        inbox.attach(self)
        step()
    }

    // MARK: - Data

    /// Writes all of `bytes`, returning once the stream has accepted them durably.
    ///
    /// Waits while the send buffer is full. It does not wait for the peer; see ``sync()``.
    ///
    /// - Throws: ``PartialWriteError`` if it stops (cancelled, or the stream failed, closed or
    ///   halted) after the stream accepted some of the bytes: its
    ///   ``PartialWriteError/acceptedCount`` says how many, from the start of `bytes`. Any other
    ///   error means that none of `bytes` was accepted.
    public func write(_ bytes: [UInt8]) async throws {
        var accepted = 0
        var mustBeDurable: UInt64 = 0
        do {
            while accepted < bytes.count {
                // The machine copies only the prefix it accepts, so each byte is copied once
                // however many rounds the write takes.
                let (taken, sequence) = try machine.appWrite(bytes[accepted...], now: now)
                accepted += taken
                mustBeDurable = sequence
                step()
                if accepted < bytes.count {
                    try await waitUntil { $0.machine.writeCapacity > 0 }
                }
            }
            try await waitUntil { $0.machine.durableSequence >= mustBeDurable }
        } catch {
            guard accepted > 0 else { throw error }
            throw PartialWriteError(acceptedCount: accepted, of: bytes.count, underlying: error)
        }
    }

    /// Reads the next bytes, waiting until some arrive, and consumes them at once.
    ///
    /// At-least-once across crashes: the bytes are returned before their consumption is
    /// durable, so a stream restored from before it offers them again. For exactly-once
    /// delivery keep your own offset and use ``read(from:maxLength:)`` with
    /// ``consume(through:)``.
    ///
    /// - Returns: up to `maxLength` bytes, or `nil` once the peer closed its direction and
    ///   everything was read.
    public func read(maxLength: Int = 64 * 1024) async throws -> [UInt8]? {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        try await waitUntil(allowFailure: true) { $0.machine.checkpoint.readableCount > 0 || $0.machine.isReadFinished }
        if machine.checkpoint.readableCount == 0 {
            if let failure = machine.failure ?? persistenceFailure { throw failure }
            return nil
        }
        let bytes = machine.appRead(maxLength: max(1, maxLength), now: now)
        step()
        if bytes.isEmpty, let failure = machine.failure { throw failure }
        return bytes
    }

    /// Reads the received bytes starting at stream offset `offset` without consuming them,
    /// waiting until some arrive.
    ///
    /// With ``consume(through:)`` this gives exactly-once delivery across crashes: the app
    /// keeps the offset of the next byte it needs (durably, with what it made of the bytes),
    /// reads from there, and consumes what it has processed. After a restore it reads on from
    /// its own offset; bytes it already holds but the restored stream had not durably received
    /// arrive again (byte-identical, same offsets) and are waited for, never handed over twice.
    ///
    /// Bytes beyond the consumed offset stay in the read buffer: once `maxReadBuffer` bytes are
    /// unconsumed the stream stops reading, so call ``consume(through:)`` as you go.
    ///
    /// - Returns: up to `maxLength` bytes starting at `offset`, or `nil` if the peer's
    ///   direction ends at `offset`.
    /// - Throws: ``StreamError/Code-swift.struct/invalidOffset`` if `offset` was already
    ///   consumed or lies beyond the end of the peer's direction; the stream's failure.
    public func read(from offset: UInt64, maxLength: Int = 64 * 1024) async throws -> [UInt8]? {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        try await waitUntil(allowFailure: true) {
            let checkpoint = $0.machine.checkpoint
            return checkpoint.deliveredBytes > offset || checkpoint.peerFinOffset != nil || offset < checkpoint.bytesConsumed
        }
        let bytes = try machine.peek(from: offset, maxLength: max(1, maxLength))
        guard bytes.isEmpty else { return bytes }
        if let failure = machine.failure ?? persistenceFailure { throw failure }
        let end = machine.checkpoint.peerFinOffset ?? offset
        guard offset <= end else {
            throw StreamError(.invalidOffset, "offset \(offset) lies beyond the end of the stream at \(end)")
        }
        return nil
    }

    /// Consumes every received byte before stream offset `offset`, returning once that is
    /// durable: a stream restored from then on never offers those bytes again.
    ///
    /// Consuming an offset already consumed returns at once. After a restore, bytes the app
    /// holds may not have been received again yet: they are consumed as they arrive, and this
    /// returns once all of them were.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/invalidOffset`` if `offset` lies beyond the
    ///   end of the peer's direction; the stream's failure.
    public func consume(through offset: UInt64) async throws {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        var mustBeDurable: UInt64
        while true {
            let target = min(offset, machine.checkpoint.deliveredBytes)
            mustBeDurable = try machine.consume(through: target, now: now)
            step()
            if target == offset { break }
            if let end = machine.checkpoint.peerFinOffset {
                throw StreamError(.invalidOffset, "cannot consume through offset \(offset): the stream ends at \(end)")
            }
            try await waitUntil { $0.machine.checkpoint.deliveredBytes > target || $0.machine.checkpoint.peerFinOffset != nil }
        }
        try await waitUntil(allowFailure: true) { $0.machine.durableSequence >= mustBeDurable }
    }

    /// The received data as an asynchronous sequence of chunks, ending when the peer closes.
    public nonisolated var chunks: Chunks { Chunks(stream: self) }

    /// Returns once the peer has acknowledged every byte written so far (in multicast: once
    /// every frame was verified in the store).
    public func sync() async throws {
        guard outbound != nil else { return }
        try await waitUntil { $0.machine.isWriteSettled && $0.machine.durableSequence >= $0.machine.lastSequence }
    }

    /// Closes this end's direction gracefully: sends everything buffered, then the end of the
    /// stream, and returns once the peer acknowledged it. The peer's direction stays open.
    public func close() async throws {
        try machine.appClose(now: now)
        step()
        try await waitUntil { $0.machine.isClosed }
    }

    /// Stops the stream at once: cancels all operations and wakes every waiter with
    /// ``StreamError/Code-swift.struct/halted``. The checkpoint stays valid for a restore.
    public func halt() {
        machine.halt()
        step()
    }

    /// The complete durable state, for a snapshot.
    ///
    /// - Important: it holds key material; store it where only the owner can read it.
    public func checkpoint() -> StreamCheckpoint { machine.checkpoint }

    /// A secret-free summary of the stream's progress.
    public var status: StreamStatus { machine.status }

    /// Why this stream's box writes were made (first sends and each kind of resend).
    public var sendStatistics: StreamSendStatistics { machine.sendStatistics }

    // MARK: - Driving the machine

    private var now: StreamTime { StreamTime(nanoseconds: (clock.now - origin).nanosecondsClamped) }

    /// Performs the machine's outputs: operations (handing the machine the completions that
    /// arrive meanwhile, inline ones included, until none are left), persistence and the
    /// timer; then wakes waiters.
    private func step(scheduledDrain: Bool = false) {
        inbox.beginDraining(scheduled: scheduledDrain)
        repeat {
            for action in machine.takeActions() {
                perform(action)
            }
        } while deliverCompletions()
        if persistence != nil { persistJournal() }
        scheduleTimer()
        wakeReadyWaiters()
    }

    /// Resumes the waiters whose condition now holds, or all of them if the stream stopped;
    /// the others stay suspended, so a change that helps nobody costs no task switch.
    private func wakeReadyWaiters() {
        guard !waiters.isEmpty else { return }
        if persistenceFailure != nil || machine.failure != nil || machine.isHalted {
            wakeAll()
            return
        }
        var index = 0
        while index < waiters.count {
            if waiters[index].condition(self) {
                waiters.swapAt(index, waiters.count - 1)
                waiters.removeLast().continuation.resume()
            } else {
                index += 1
            }
        }
    }

    private func perform(_ action: StreamAction) {
        switch action {
        case .write(let operation, let index, let bytes):
            guard let outbound else { return }
            let inbox = inbox
            keep(operation, outbound.startWrite(index: index, bytes: bytes) { result in
                if let stream = inbox.post(.write(operation, result)) { Self.scheduleDrain(stream) }
            })
        case .read(let operation, let channel, let index, let mode):
            guard let box = channel == .inbound ? inbound : outbound else { return }
            let inbox = inbox
            keep(operation, box.startRead(index: index, mode: mode) { result in
                if let stream = inbox.post(.read(operation, result)) { Self.scheduleDrain(stream) }
            })
        case .cancel(let operation):
            // A completion this causes (maybe inline) reaches the machine, which ignores it.
            operations.removeValue(forKey: operation)?.cancel()
        }
    }

    /// Keeps a started operation until it completes, if it can be cancelled.
    private func keep(_ operation: OperationID, _ started: BoxOperation) {
        if started.isCancellable { operations[operation] = started }
    }

    /// Schedules a drain of the inbox, for completions that arrived while the actor was not draining.
    private nonisolated static func scheduleDrain(_ stream: Stream) {
        Task { await stream.drainInbox() }
    }

    private func drainInbox() {
        step(scheduledDrain: true)
    }

    /// Hands the queued completions to the machine; returns `false` (and ends the drain) if
    /// none were queued.
    private func deliverCompletions() -> Bool {
        guard inbox.take(into: &completions) else { return false }
        let time = now
        for completion in completions {
            switch completion {
            case .write(let operation, let result):
                if !operations.isEmpty { operations.removeValue(forKey: operation) }
                machine.writeCompleted(operation, result: result, now: time)
            case .read(let operation, let result):
                if !operations.isEmpty { operations.removeValue(forKey: operation) }
                machine.readCompleted(operation, result: result, now: time)
            }
        }
        completions.removeAll(keepingCapacity: true)
        return true
    }

    private func persistJournal() {
        guard !persisting, let persistence else { return }
        let records = machine.takeJournal()
        guard let last = records.last?.sequence else { return }
        persisting = true
        Task { [weak self] in
            do {
                try await persistence.persist(records)
                await self?.persisted(through: last)
            } catch {
                await self?.persistFailed(error)
            }
        }
    }

    private func persisted(through sequence: UInt64) {
        persisting = false
        machine.markDurable(through: sequence, now: now)
        step()
    }

    private func persistFailed(_ error: any Error) {
        persisting = false
        persistenceFailure = StreamError(.transport, "persisting the stream failed: \(error)")
        machine.halt()
        step()
    }

    /// Re-arms the one timer if the machine's deadline moved earlier than it is armed for.
    ///
    /// A deadline that moves later (as the retransmission timer does on every ack) or goes
    /// away leaves the timer armed: it fires early, finds nothing due, and is re-armed then.
    /// That is one wake-up per armed deadline instead of reprogramming the timer per change.
    private func scheduleTimer() {
        guard let deadline = Self.nextDeadline(of: &machine) else { return }
        if let armed = timerArmedAt, armed <= deadline { return }
        timerArmedAt = deadline
        timer.arm(in: deadline.nanoseconds &- now.nanoseconds)
    }

    /// The machine's ``StreamMachine/nextDeadline``, read in place: read from the actor's
    /// stored property the plain way, the whole machine is copied out first (on every step).
    private static func nextDeadline(of machine: inout StreamMachine) -> StreamTime? { machine.nextDeadline }

    private func timerFired() {
        timerArmedAt = nil
        machine.handleTimers(now: now)  // Does nothing if the deadline moved later.
        step()
    }

    /// Suspends until `condition` holds, re-checking it after every state change (inside the
    /// actor, so no wake-up is lost) and resuming only once it holds or the stream stops.
    ///
    /// Throws the stream's failure, ``StreamError/Code-swift.struct/halted``, or
    /// `CancellationError` if the calling task is cancelled.
    private func waitUntil(allowFailure: Bool = false, _ condition: @escaping (isolated Stream) -> Bool) async throws {
        while true {
            if allowFailure, condition(self) { return }
            if let failure = persistenceFailure ?? machine.failure { throw failure }
            if machine.isHalted { throw StreamError(.halted, "the stream was halted") }
            if condition(self) { return }
            try Task.checkCancellation()
            await withTaskCancellationHandler {
                await withCheckedContinuation { waiters.append(Waiter(condition: condition, continuation: $0)) }
            } onCancel: {
                Task { [weak self] in await self?.wakeAll() }
            }
        }
    }

    private func wakeAll() {
        let current = waiters
        waiters.removeAll()
        for waiter in current { waiter.continuation.resume() }
    }

    deinit {
        timer.cancel()
        timerTask?.cancel()
        operations.forEachValue { $0.cancel() }
    }
}

extension Stream {
    /// The received data of a ``Stream`` as chunks; see ``Stream/chunks``.
    public struct Chunks: AsyncSequence, Sendable {
        public typealias Element = [UInt8]
        let stream: Stream

        public struct AsyncIterator: AsyncIteratorProtocol {
            let stream: Stream
            public mutating func next() async throws -> [UInt8]? { try await stream.read() }
        }

        public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(stream: stream) }
    }
}
