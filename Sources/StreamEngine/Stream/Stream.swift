import Synchronization

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
/// a ``StreamPersistence``, and suspends callers until their condition holds. Its state is
/// behind one lock, which the data path never waits for: whoever holds it runs what others
/// posted meanwhile (completions, app calls, waits), so a peer's completion is handed to the
/// machine on the thread it arrives on, and an app call costs no task switch unless it finds
/// the lock taken.
/// Every wait checks and parks under the lock, so no wake-up is lost.
///
/// ```swift
/// let address = StreamAddress.generate()
/// let alice = try await Stream.listen(address: address, store: store)
/// let bob = try await Stream.dial(address: address, store: store)
/// try await alice.write(Array("hello".utf8))
/// let chunk = try await bob.read()   // [104, 101, 108, 108, 111]
/// ```
public actor Stream {
    /// Everything mutable, behind one lock rather than the actor's isolation: a completion
    /// from another thread (the peer's write landing a parked read) drains the inbox on its
    /// own thread when the lock is free, instead of scheduling a task that wakes another
    /// thread; the app's calls take the lock too, without hopping onto the actor.
    private let state: Mutex<State>
    private let outbound: (any BoxChannel)?
    private let inbound: (any BoxChannel)?
    private let persistence: (any StreamPersistence)?
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    /// Where operations' completions wait for the lock; see ``CompletionInbox``.
    private let inbox = CompletionInbox()
    /// The machine's next deadline, re-armed in place whenever it moves.
    private let timer = ReArmableTimer()
    /// The one task that runs the machine's timers when ``timer`` fires.
    private var timerTask: Task<Void, Never>?

    /// The stream's mutable state; see ``state``.
    struct State {
        var machine: StreamMachine
        /// The operations started and not completed yet that can be cancelled (one that
        /// completed inside its `start…` call is not kept).
        var operations = OperationSlots<BoxOperation>(span: 64)
        /// The batch of completions being handed to the machine (its storage is reused).
        var completions: [CompletionInbox.Completion] = []
        /// When ``timer`` is armed to fire, if it is.
        var timerArmedAt: StreamTime?
        var persisting = false
        var persistenceFailure: StreamError?
        /// Suspended callers, each with the condition it waits for.
        var waiters: [Waiter] = []

        /// Whether the stream stopped: waiters wake whatever their condition.
        var isStopped: Bool { persistenceFailure != nil || machine.failure != nil || machine.isHalted }
    }

    /// A suspended caller of ``waitUntil(allowFailure:_:)``.
    struct Waiter {
        /// What the caller waits for; it is woken once this holds or the stream stops.
        var condition: @Sendable (inout State) -> Bool
        /// Resumes the caller, which looks again.
        var resume: @Sendable () -> Void
    }

    /// Whether a wait was cancelled, set before its cancellation handler posts the wake-up: a
    /// wait parked by a drain after that wake-up ran sees it and does not park.
    private final class CancellationFlag: Sendable {
        private let cancelled = Mutex(false)
        var isCancelled: Bool { cancelled.withLock { $0 } }
        func cancel() { cancelled.withLock { $0 = true } }
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
        state = Mutex(State(machine: machine))
        self.persistence = persistence
        origin = clock.now
        timerTask = Task { [weak self, ticks = timer.ticks] in
            for await _ in ticks {
                guard let self else { return }
                self.timerFired()
            }
        }
        inbox.attach(self)
        withState { step(&$0) }
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
    public nonisolated func write(_ bytes: [UInt8]) async throws {
        var accepted = 0
        var mustBeDurable: UInt64 = 0
        do {
            while accepted < bytes.count {
                // The machine copies only the prefix it accepts, so each byte is copied once
                // however many rounds the write takes.
                let (taken, sequence) = try await visit { [accepted] s in try s.machine.appWrite(bytes[accepted...], now: self.now) }
                accepted += taken
                mustBeDurable = sequence
                if accepted < bytes.count {
                    try await waitUntil { $0.machine.writeCapacity > 0 }
                }
            }
            try await waitUntil { [mustBeDurable] in $0.machine.durableSequence >= mustBeDurable }
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
    public nonisolated func read(maxLength: Int = 64 * 1024) async throws -> [UInt8]? {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        while true {
            try await waitUntil(allowFailure: true) { $0.machine.checkpoint.readableCount > 0 || $0.machine.isReadFinished }
            // `.none` if another reader took the bytes since the wait: wait again.
            let outcome = try await visit { s throws -> [UInt8]?? in
                if s.machine.checkpoint.readableCount == 0 {
                    if let failure = s.machine.failure ?? s.persistenceFailure { throw failure }
                    return s.machine.isReadFinished ? .some(nil) : .none
                }
                let bytes = s.machine.appRead(maxLength: max(1, maxLength), now: self.now)
                if bytes.isEmpty, let failure = s.machine.failure { throw failure }
                return bytes
            }
            if let outcome { return outcome }
        }
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
    public nonisolated func read(from offset: UInt64, maxLength: Int = 64 * 1024) async throws -> [UInt8]? {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        try await waitUntil(allowFailure: true) {
            let checkpoint = $0.machine.checkpoint
            return checkpoint.deliveredBytes > offset || checkpoint.peerFinOffset != nil || offset < checkpoint.bytesConsumed
        }
        return try await visit { s throws -> [UInt8]? in
            let bytes = try s.machine.peek(from: offset, maxLength: max(1, maxLength))
            guard bytes.isEmpty else { return bytes }
            if let failure = s.machine.failure ?? s.persistenceFailure { throw failure }
            let end = s.machine.checkpoint.peerFinOffset ?? offset
            guard offset <= end else {
                throw StreamError(.invalidOffset, "offset \(offset) lies beyond the end of the stream at \(end)")
            }
            return nil
        }
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
    public nonisolated func consume(through offset: UInt64) async throws {
        guard inbound != nil else { throw StreamError(.readOnly, "this end of the stream can only write") }
        var mustBeDurable: UInt64
        while true {
            let (target, durable) = try await visit { s throws in
                let target = min(offset, s.machine.checkpoint.deliveredBytes)
                let durable = try s.machine.consume(through: target, now: self.now)
                if target != offset, let end = s.machine.checkpoint.peerFinOffset {
                    throw StreamError(.invalidOffset, "cannot consume through offset \(offset): the stream ends at \(end)")
                }
                return (target, durable)
            }
            mustBeDurable = durable
            if target == offset { break }
            try await waitUntil { $0.machine.checkpoint.deliveredBytes > target || $0.machine.checkpoint.peerFinOffset != nil }
        }
        try await waitUntil(allowFailure: true) { [mustBeDurable] in $0.machine.durableSequence >= mustBeDurable }
    }

    /// The received data as an asynchronous sequence of chunks, ending when the peer closes.
    public nonisolated var chunks: Chunks { Chunks(stream: self) }

    /// Returns once the peer has acknowledged every byte written so far (in multicast: once
    /// every frame was verified in the store).
    public nonisolated func sync() async throws {
        guard outbound != nil else { return }
        try await waitUntil { $0.machine.isWriteSettled && $0.machine.durableSequence >= $0.machine.lastSequence }
    }

    /// Closes this end's direction gracefully: sends everything buffered, then the end of the
    /// stream, and returns once the peer acknowledged it. The peer's direction stays open.
    public nonisolated func close() async throws {
        try await visit { s throws in try s.machine.appClose(now: self.now) }
        try await waitUntil { $0.machine.isClosed }
    }

    /// Stops the stream at once: cancels all operations and wakes every waiter with
    /// ``StreamError/Code-swift.struct/halted``. The checkpoint stays valid for a restore.
    public func halt() {
        withState { s in
            s.machine.halt()
            step(&s)
        }
    }

    /// The complete durable state, for a snapshot.
    ///
    /// - Important: it holds key material; store it where only the owner can read it.
    public func checkpoint() -> StreamCheckpoint { withState { $0.machine.checkpoint } }

    /// A secret-free summary of the stream's progress.
    public var status: StreamStatus { withState { $0.machine.status } }

    /// Why this stream's box writes were made (first sends and each kind of resend).
    public var sendStatistics: StreamSendStatistics { withState { $0.machine.sendStatistics } }

    // MARK: - Driving the machine

    private nonisolated var now: StreamTime { StreamTime(nanoseconds: (clock.now - origin).nanosecondsClamped) }

    /// Performs the machine's outputs: operations (handing the machine the completions that
    /// arrive meanwhile, inline ones included, until none are left), persistence and the
    /// timer; then wakes waiters. Runs under the lock.
    private nonisolated func step(_ s: inout State) {
        inbox.beginDraining()
        repeat {
            for action in s.machine.takeActions() {
                perform(action, &s)
            }
        } while deliverCompletions(&s)
        if persistence != nil { persistJournal(&s) }
        scheduleTimer(&s)
        wakeReadyWaiters(&s)
    }

    /// Resumes the waiters whose condition now holds, or all of them if the stream stopped;
    /// the others stay suspended, so a change that helps nobody costs no task switch.
    private nonisolated func wakeReadyWaiters(_ s: inout State) {
        guard !s.waiters.isEmpty else { return }
        if s.isStopped {
            wakeAll(&s)
            return
        }
        var index = 0
        while index < s.waiters.count {
            if s.waiters[index].condition(&s) {
                s.waiters.swapAt(index, s.waiters.count - 1)
                DeferredDrains.wake(s.waiters.removeLast().resume)
            } else {
                index += 1
            }
        }
    }

    private nonisolated func perform(_ action: StreamAction, _ s: inout State) {
        switch action {
        case .write(let operation, let index, let bytes):
            guard let outbound else { return }
            let inbox = inbox
            keep(operation, outbound.startWrite(index: index, bytes: bytes) { result in
                if let stream = inbox.post(.write(operation, result)) { DeferredDrains.drain(stream) }
            }, &s)
        case .read(let operation, let channel, let index, let mode):
            guard let box = channel == .inbound ? inbound : outbound else { return }
            let inbox = inbox
            keep(operation, box.startRead(index: index, mode: mode) { result in
                if let stream = inbox.post(.read(operation, result)) { DeferredDrains.drain(stream) }
            }, &s)
        case .cancel(let operation):
            // A completion this causes (maybe inline) reaches the machine, which ignores it.
            s.operations.removeValue(forKey: operation)?.cancel()
        }
    }

    /// Keeps a started operation until it completes, if it can be cancelled.
    private nonisolated func keep(_ operation: OperationID, _ started: BoxOperation, _ s: inout State) {
        if started.isCancellable { s.operations[operation] = started }
    }

    /// Runs `body` under the lock, waiting for it, then drains the completions posted meanwhile
    /// that no step took (their posters found the lock taken and left them to the holder).
    ///
    /// For the rare calls (halt, status, timer ticks, persistence results); the data path
    /// uses ``visit(_:)``, which never waits for the lock.
    ///
    /// Drains of other streams that this causes (this stream's writes landing their parked
    /// reads) wait until the lock is released and then run on this task; see ``DeferredDrains``.
    private nonisolated func withState<Result: Sendable>(_ body: (inout State) throws -> Result) rethrows -> Result {
        try DeferredDrains.collecting {
            defer { drainPosted() }
            return try state.withLock { (s: inout State) throws -> Result in try body(&s) }
        }
    }

    /// Runs `body` (a machine input; the step that follows performs its outputs) under the
    /// lock: at once if the lock is free, else posted to the inbox for the lock's holder to
    /// run, resuming the caller after. No app call spins or sleeps on the lock.
    private nonisolated func visit<Result: Sendable>(_ body: @escaping @Sendable (inout State) throws -> Result) async throws -> Result {
        let atOnce: Swift.Result<Result, any Error>? = DeferredDrains.collecting {
            defer { drainPosted() }
            return state.withLockIfAvailable { s -> Swift.Result<Result, any Error> in
                let result = Swift.Result { try body(&s) }
                step(&s)
                return result
            }
        }
        if let atOnce { return try atOnce.get() }
        return try await withCheckedThrowingContinuation { continuation in
            post { s in continuation.resume(with: Swift.Result { try body(&s) }) }
        }
    }

    /// Posts `call` to run under the lock, in the next drain; drains at once if it can.
    private nonisolated func post(_ call: @escaping @Sendable (inout State) -> Void) {
        if let stream = inbox.post(.call(call)) { DeferredDrains.drain(stream) }
    }

    /// Drains the inbox on the calling thread if completions wait and the lock is free: no
    /// task, no other thread woken. If the lock is taken, its holder drains after releasing it.
    nonisolated func drainPosted() {
        // After a drain, a completion may have been posted before the lock was released.
        while inbox.needsDrain, state.withLockIfAvailable({ step(&$0) }) != nil {}
    }

    /// Hands the queued completions to the machine; returns `false` (and ends the drain) if
    /// none were queued.
    private nonisolated func deliverCompletions(_ s: inout State) -> Bool {
        guard inbox.take(into: &s.completions) else { return false }
        let time = now
        for completion in s.completions {
            switch completion {
            case .write(let operation, let result):
                if !s.operations.isEmpty { s.operations.removeValue(forKey: operation) }
                s.machine.writeCompleted(operation, result: result, now: time)
            case .read(let operation, let result):
                if !s.operations.isEmpty { s.operations.removeValue(forKey: operation) }
                s.machine.readCompleted(operation, result: result, now: time)
            case .call(let call):
                call(&s)
            }
        }
        s.completions.removeAll(keepingCapacity: true)
        return true
    }

    private nonisolated func persistJournal(_ s: inout State) {
        guard !s.persisting, let persistence else { return }
        let records = s.machine.takeJournal()
        guard let last = records.last?.sequence else { return }
        s.persisting = true
        Task { [weak self] in
            do {
                try await persistence.persist(records)
                self?.persisted(through: last)
            } catch {
                self?.persistFailed(error)
            }
        }
    }

    private nonisolated func persisted(through sequence: UInt64) {
        withState { s in
            s.persisting = false
            s.machine.markDurable(through: sequence, now: now)
            step(&s)
        }
    }

    private nonisolated func persistFailed(_ error: any Error) {
        withState { s in
            s.persisting = false
            s.persistenceFailure = StreamError(.transport, "persisting the stream failed: \(error)")
            s.machine.halt()
            step(&s)
        }
    }

    /// Re-arms the one timer if the machine's deadline moved earlier than it is armed for.
    ///
    /// A deadline that moves later (as the retransmission timer does on every ack) or goes
    /// away leaves the timer armed: it fires early, finds nothing due, and is re-armed then.
    /// That is one wake-up per armed deadline instead of reprogramming the timer per change.
    private nonisolated func scheduleTimer(_ s: inout State) {
        guard let deadline = s.machine.nextDeadline else { return }
        if let armed = s.timerArmedAt, armed <= deadline { return }
        s.timerArmedAt = deadline
        timer.arm(in: deadline.nanoseconds &- now.nanoseconds)
    }

    private nonisolated func timerFired() {
        withState { s in
            s.timerArmedAt = nil
            s.machine.handleTimers(now: now)  // Does nothing if the deadline moved later.
            step(&s)
        }
    }

    /// Suspends until `condition` holds, re-checking it after every state change (under the
    /// lock, so no wake-up is lost) and resuming only once it holds or the stream stops.
    ///
    /// Throws the stream's failure, ``StreamError/Code-swift.struct/halted``, or
    /// `CancellationError` if the calling task is cancelled.
    private nonisolated func waitUntil(allowFailure: Bool = false, _ condition: @escaping @Sendable (inout State) -> Bool) async throws {
        let flag = CancellationFlag()
        while true {
            // One visit checks and, unless the condition holds, parks: a change in between is
            // impossible. The continuation is resumed with whether to look again.
            let holds = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Bool, any Error>) in
                    post { s in
                        if allowFailure, condition(&s) { return continuation.resume(returning: true) }
                        if let failure = s.persistenceFailure ?? s.machine.failure { return continuation.resume(throwing: failure) }
                        if s.machine.isHalted { return continuation.resume(throwing: StreamError(.halted, "the stream was halted")) }
                        if condition(&s) { return continuation.resume(returning: true) }
                        if flag.isCancelled { return continuation.resume(throwing: CancellationError()) }
                        s.waiters.append(Waiter(condition: condition) { continuation.resume(returning: false) })
                    }
                }
            } onCancel: {
                flag.cancel()
                post { self.wakeAll(&$0) }
            }
            if holds { return }
        }
    }

    private nonisolated func wakeAll(_ s: inout State) {
        let current = s.waiters
        s.waiters.removeAll()
        for waiter in current { DeferredDrains.wake(waiter.resume) }
    }

    deinit {
        timer.cancel()
        timerTask?.cancel()
        state.withLock { $0.operations.forEachValue { $0.cancel() } }
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
