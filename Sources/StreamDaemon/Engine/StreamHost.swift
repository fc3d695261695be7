import CBOR
import IPC
import Logging
import PigeonholeTransport
import StreamEngine
import StreamStore

/// Runs every stream of the daemon: drives their machines, shares kpclientd between them,
/// keeps one timer queue, and commits their journals in groups.
///
/// The host is the only place where machines change. After each change it performs the
/// machine's outputs in one place (``step(_:)``): operations go to the ``OperationScheduler``,
/// journal records to the next group commit, the deadline to the ``TimerQueue``, and waiting
/// app requests are woken to re-check their condition, so no wake-up is lost.
///
/// Durability: a stream's records are committed in one SQLite transaction with every other
/// stream's pending records; only then is the machine told (``StreamMachine/markDurable(through:now:)``),
/// which releases first sends and app replies. A failed commit is fatal: the host halts
/// everything and reports through `onFatal`; the daemon exits and recovers on restart.
actor StreamHost {
    typealias Key = StoredStreamID

    let configuration: DaemonConfiguration
    let database: StreamDatabase
    let link: KpclientdLink
    let logger: Logger
    private let onFatal: @Sendable (any Error) -> Void

    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant

    var streams: [Key: ManagedStream] = [:]
    var names: [String: Key] = [:]
    /// Names taken by a create or join that is still being committed.
    var reservedNames: Set<String> = []
    /// Streams whose stored state could not be restored, by name: listed, never run.
    var damaged: [String: (id: StoredStreamID, reason: String)] = [:]

    private var scheduler: OperationScheduler<Key>
    private var timers = TimerQueue<Key>()
    private var timerTask: Task<Void, Never>?
    private var timerTarget: StreamTime?

    private var pendingRecords: [Key: [CheckpointRecord]] = [:]
    /// Group commits queued on the store thread whose outcome the host has not processed yet.
    private var groupCommitsInFlight = 0
    /// Whether a direct commit (``commitNow(_:)``) holds the store; group commits wait meanwhile.
    private var directCommitRunning = false
    /// Direct commits waiting for the store; each is handed the turn when it resumes.
    private var commitWaiters: [CheckedContinuation<Void, Never>] = []
    /// Outcomes of group commits, yielded by the store thread in commit order.
    private let commitOutcomes: AsyncStream<CommitOutcome>.Continuation
    /// Set once a commit failed; everything stops.
    private(set) var fatalError: (any Error)?
    /// Whether the kpclientd session is up; operations are held while it is down.
    private(set) var kpclientdUp = false
    private var subscribers: [UInt64: Subscriber] = [:]
    private var nextSubscriberID: UInt64 = 0
    private var stopping = false
    /// Transport operations started since start, by kind (``operationCounts()``).
    private var started = OperationCounts()

    /// An app connection's subscription to stream events.
    struct Subscriber {
        var names: Set<String>?
        var continuation: AsyncStream<IPCEvent>.Continuation
    }

    init(
        configuration: DaemonConfiguration, database: StreamDatabase, link: KpclientdLink, logger: Logger,
        onFatal: @escaping @Sendable (any Error) -> Void
    ) {
        self.configuration = configuration
        self.database = database
        self.link = link
        self.logger = logger
        self.onFatal = onFatal
        origin = clock.now
        scheduler = OperationScheduler(configuration: configuration.scheduler, now: .zero)
        let (outcomes, sink) = AsyncStream.makeStream(of: CommitOutcome.self)
        commitOutcomes = sink
        Task { [weak self] in
            for await outcome in outcomes {
                guard let self else { return }
                await self.groupCommitEnded(outcome)
            }
        }
    }

    deinit {
        commitOutcomes.finish()
    }

    /// The host's clock: time since it started.
    var now: StreamTime { StreamTime(nanoseconds: (clock.now - origin).nanosecondsClamped) }

    // MARK: - Restore

    /// Restores every stored stream; a stream whose state is damaged is quarantined and listed,
    /// and the others still start.
    ///
    /// - Parameter progress: called after every 1,000 streams with (restored, total).
    func restoreAll(progress: @Sendable (Int, Int) -> Void = { _, _ in }) async throws {
        let stored = try await database.loadAll()
        var quarantine = CommitBatch()
        for (position, row) in stored.enumerated() {
            if position % 1000 == 999 { progress(position + 1, stored.count) }
            if let reason = row.quarantine {
                damaged[row.name] = (row.id, reason)
                continue
            }
            do {
                let stream = try restore(row)
                streams[row.id] = stream
                names[row.name] = row.id
            } catch {
                let reason = "\(error)"
                logger.error("stream state is damaged; quarantined", metadata: ["stream": "\(row.name)", "reason": "\(reason)"])
                damaged[row.name] = (row.id, reason)
                quarantine.quarantined.append((row.id, reason: reason))
            }
        }
        if !quarantine.isEmpty { _ = try await database.commit(quarantine) }
        for stream in streams.values { step(stream) }
        logger.info("restored streams", metadata: ["restored": "\(streams.count)", "damaged": "\(damaged.count)", "event": "streams-restored"])
    }

    private func restore(_ row: StoredStream) throws -> ManagedStream {
        let name = try StreamName(row.name)
        let metadata = try StreamMetadata(encoded: row.metadata)
        let checkpoint = try StreamCheckpoint(encoded: row.checkpoint)
        let records = try row.journal.map { entry throws(StreamError) in try CheckpointRecord(encoded: entry.bytes) }
        let machine = try StreamMachine(
            restoring: checkpoint, journal: records, boxSize: checkpoint.boxSize,
            configuration: configuration.streamConfiguration, durability: .explicit, now: now,
            randomSeed: UInt64.random(in: .min ... .max))
        let stream = ManagedStream(id: row.id, name: name, metadata: metadata, machine: machine, rowsSinceCheckpoint: row.journal.count)
        stream.bytesSinceCheckpoint = row.journal.reduce(0) { $0 + $1.bytes.count }
        if let stored = row.indexSnapshot, let snapshots = IndexSnapshots(encoded: stored) {
            stream.indexSnapshots = snapshots
        }
        return stream
    }

    // MARK: - Driving machines

    /// Performs a stream's outputs after any change to its machine.
    func step(_ stream: ManagedStream) {
        let key = stream.id
        for action in stream.machine.takeActions() {
            switch action {
            case .cancel(let operation):
                if !scheduler.cancel(key, operation), let running = stream.running.removeValue(forKey: operation) {
                    running.operation.cancel()
                    scheduler.finished(running.lane)
                }
            default:
                scheduler.enqueue(key, action)
            }
        }
        let records = stream.machine.takeJournal()
        if !records.isEmpty {
            for record in records {
                if case .frameCreated(_, _, let kind, _) = record.delta { started.framesCreated[kind, default: 0] += 1 }
            }
            pendingRecords[key, default: []].append(contentsOf: records)
            commitIfIdle()
        }
        let (deadline, peerClosed) = stream.inspect { ($0.nextDeadline, $0.checkpoint.peerFinOffset != nil) }
        timers.arm(key, at: deadline)
        if !stream.loggedPeerClosed, peerClosed {
            stream.loggedPeerClosed = true
            logger.info("peer closed the stream", metadata: ["stream": "\(stream.name.rawValue)", "event": "peer-closed"])
        }
        announce(stream)
        wake(stream)
        dispatch()
    }

    /// Starts the operations the scheduler releases, while kpclientd is up.
    private func dispatch() {
        defer { armTimer() }
        guard kpclientdUp, fatalError == nil, !stopping else { return }
        for job in scheduler.start(now: now) {
            guard let stream = streams[job.key] else {
                scheduler.finished(job.lane)
                continue
            }
            let key = job.key
            switch job.action {
            case .write: started.writes += 1
            case .read(_, _, _, .wait): started.waitingReads += 1
            case .read(_, _, _, .poll): started.polls += 1
            case .cancel: break
            }
            let operation: BoxOperation
            if let channel = stream.opened[Self.channel(of: job.action)] {
                operation = start(job, key: key, on: channel)
            } else {
                // The channel's first operation opens it, in a task.
                let task = Task { [weak self] in
                    guard let self else { return }
                    await self.run(job, key: key)
                }
                operation = BoxOperation { task.cancel() }
            }
            stream.running[job.operation] = (operation, job.lane)
        }
    }

    /// The channel an operation is on.
    private static func channel(of action: StreamAction) -> StreamChannel {
        switch action {
        case .read(_, let which, _, _): which
        case .write, .cancel: .outbound
        }
    }

    /// Starts one transport operation on an open channel through its completion callback: no
    /// task waits while it runs (a waiting read may wait for minutes). The outcome comes
    /// back to the actor as ``run(_:key:)``'s does.
    private func start(_ job: OperationScheduler<Key>.Job, key: Key, on channel: PigeonholeBoxChannel) -> BoxOperation {
        let lane = job.lane
        switch job.action {
        case .write(let operation, let index, let bytes):
            return channel.startWrite(index: index, bytes: bytes) { [weak self] result in
                Task { await self?.writeFinished(key, operation, lane, result) }
            }
        case .read(let operation, _, let index, let mode):
            return channel.startRead(index: index, mode: mode) { [weak self] result in
                Task { await self?.readFinished(key, operation, lane, result) }
            }
        case .cancel:
            return .completed
        }
    }

    /// Opens the channel of a stream's first operation on it, outside the actor, then starts
    /// the operation through its callback (``start(_:key:on:)``); a failure to open is the
    /// operation's outcome.
    private nonisolated func run(_ job: OperationScheduler<Key>.Job, key: Key) async {
        do {
            let channel = try await channel(key, Self.channel(of: job.action))
            await startOnOpened(job, key: key, channel: channel)
        } catch {
            let failure = BoxTransportError(classifying: error)
            switch job.action {
            case .write(let operation, _, _): await writeFinished(key, operation, job.lane, .failure(failure))
            case .read(let operation, _, _, _): await readFinished(key, operation, job.lane, .failure(failure))
            case .cancel: break
            }
        }
    }

    /// Starts an operation whose channel has just opened, unless it was cancelled meanwhile;
    /// its running entry then cancels the started operation.
    private func startOnOpened(_ job: OperationScheduler<Key>.Job, key: Key, channel: PigeonholeBoxChannel) {
        guard !stopping, fatalError == nil, let stream = streams[key], stream.running[job.operation] != nil else { return }
        stream.running[job.operation] = (start(job, key: key, on: channel), job.lane)
    }

    private func writeFinished(_ key: Key, _ operation: OperationID, _ lane: OperationScheduler<Key>.Lane, _ result: Result<Void, BoxTransportError>) {
        guard let stream = streams[key], stream.running.removeValue(forKey: operation) != nil else { return }
        scheduler.finished(lane)
        stream.machine.writeCompleted(operation, result: result, now: now)
        step(stream)
    }

    private func readFinished(_ key: Key, _ operation: OperationID, _ lane: OperationScheduler<Key>.Lane, _ result: Result<[UInt8]?, BoxTransportError>) {
        guard let stream = streams[key], stream.running.removeValue(forKey: operation) != nil else { return }
        scheduler.finished(lane)
        stream.machine.readCompleted(operation, result: result, now: now)
        step(stream)
    }

    /// The box channel of a stream, opened once (through kpclientd) and then cached.
    ///
    /// It starts from the index cache stored with the stream's checkpoint, if any.
    private func channel(_ key: Key, _ which: StreamChannel) async throws -> PigeonholeBoxChannel {
        guard let stream = streams[key] else { throw CancellationError() }
        if let opening = stream.channels[which] { return try await opening.value }
        let credential = which == .outbound
            ? stream.machine.checkpoint.outboundChannelCredential
            : stream.machine.checkpoint.inboundChannelCredential
        guard let credential else { throw BoxTransportError(.permissionDenied, "this end has no \(which) channel") }
        let link = self.link
        let snapshot = stream.indexSnapshots[which]
        let opening = Task<PigeonholeBoxChannel, any Error> {
            guard let store = await link.store else { throw BoxTransportError(.unavailable, "kpclientd is not connected") }
            do {
                return try await store.pigeonholeChannel(credential, indexSnapshot: snapshot)
            } catch let error as BoxTransportError where snapshot != nil && error.code == .failed {
                // A stored cache that does not fit the channel is only an optimisation lost.
                return try await store.pigeonholeChannel(credential)
            }
        }
        stream.channels[which] = opening
        do {
            let channel = try await opening.value
            if streams[key]?.channels[which] == opening { streams[key]?.opened[which] = channel }
            return channel
        } catch {
            // Forget the failed attempt so the next operation tries again.
            if streams[key]?.channels[which] == opening { streams[key]?.channels[which] = nil }
            throw error
        }
    }

    /// Stops a stream and drops it from the host: its queued and running operations, its
    /// timer and its uncommitted records. Requests waiting on it fail with `noSuchStream`.
    func forget(_ stream: ManagedStream) {
        halt(stream)
        pendingRecords[stream.id] = nil
        streams[stream.id] = nil
        names[stream.name.rawValue] = nil
        wake(stream)
    }

    /// Stops a stream that cannot go on; it stays listed, as failed, with the reason.
    private func stop(_ stream: ManagedStream, _ failure: StreamError) {
        stream.hostFailure = failure
        halt(stream)
        announce(stream)
        wake(stream)
    }

    /// Halts a stream's machine and releases its operations and timer.
    private func halt(_ stream: ManagedStream) {
        let key = stream.id
        stream.machine.halt()
        scheduler.removeAll(for: key)
        for running in stream.running.values {
            running.operation.cancel()
            scheduler.finished(running.lane)
        }
        stream.running.removeAll()
        timers.arm(key, at: nil)
    }

    /// Operations started since start, and the running streams' send statistics.
    func operationCounts() -> OperationCounts {
        var counts = started
        for stream in streams.values { counts.sends.add(stream.inspect { $0.sendStatistics }) }
        return counts
    }

    // MARK: - Timers

    private func armTimer() {
        guard !stopping, fatalError == nil else { return }
        var next = timers.earliest()
        if kpclientdUp, let token = scheduler.nextTokenTime() { next = min(next ?? token, token) }
        guard let next else {
            timerTask?.cancel()
            timerTask = nil
            timerTarget = nil
            return
        }
        if let target = timerTarget, target <= next, timerTask != nil { return }
        timerTask?.cancel()
        timerTarget = next
        let instant = origin.advanced(by: .nanoseconds(next.nanoseconds))
        timerTask = Task { [weak self, clock] in
            do {
                try await clock.sleep(until: instant, tolerance: .milliseconds(2))
            } catch {
                return
            }
            await self?.timersFired()
        }
    }

    private func timersFired() {
        timerTask = nil
        timerTarget = nil
        let current = now
        for key in timers.popDue(now: current) {
            guard let stream = streams[key] else { continue }
            stream.machine.handleTimers(now: current)
            step(stream)
        }
        dispatch()
    }

    // MARK: - Group commit

    /// The end of one group commit: the streams and sequences it made durable, or its error.
    struct CommitOutcome: Sendable {
        var marks: [(Key, UInt64)]
        var result: Result<[StoredStreamID], StreamStoreError>
    }

    /// Group commits queued on the store thread at once: one committing and the next waiting
    /// behind it, so the store starts the next transaction the moment one ends instead of
    /// waiting for the host to process the outcome (a pipeline; outcomes arrive in order).
    static let maxGroupCommitsInFlight = 2

    /// Queues a commit of every stream's pending records unless the pipeline is full or a
    /// direct commit holds or waits for the store; records that arrive meanwhile go into the
    /// next one.
    private func commitIfIdle() {
        guard !directCommitRunning, commitWaiters.isEmpty, groupCommitsInFlight < Self.maxGroupCommitsInFlight,
              fatalError == nil, !pendingRecords.isEmpty
        else { return }
        groupCommitsInFlight += 1
        var batch = CommitBatch()
        var marks: [(Key, UInt64)] = []
        for (key, records) in pendingRecords {
            guard let stream = streams[key], let last = records.last?.sequence else { continue }
            marks.append((key, last))
            let size = records.reduce(0) { $0 + Self.approximateSize($1) }
            if stream.rowsSinceCheckpoint + records.count > Self.compactAfterRows || stream.bytesSinceCheckpoint + size > Self.compactAfterBytes {
                // Compaction: the checkpoint holds every record taken so far, so it replaces them all
                // (and the rows of a commit still queued before this one, which runs first).
                precondition(stream.machine.checkpoint.sequence == last, "records were left untaken")
                let snapshots = stream.indexSnapshots
                batch.checkpoints.append(
                    (key, checkpoint: stream.machine.checkpoint.encoded(), sequence: last, indexSnapshot: snapshots.isEmpty ? nil : snapshots.encoded()))
                stream.rowsSinceCheckpoint = 0
                stream.bytesSinceCheckpoint = 0
                refreshIndexSnapshots(stream)
            } else {
                batch.appended.append((key, records.map { StreamRecordRow(sequence: $0.sequence, bytes: $0.encoded()) }))
                stream.rowsSinceCheckpoint += records.count
                stream.bytesSinceCheckpoint += size
            }
        }
        started.groupCommits += 1
        started.recordsCommitted += pendingRecords.values.reduce(0) { $0 + $1.count }
        pendingRecords.removeAll(keepingCapacity: true)
        let outcomes = commitOutcomes
        database.commit(batch) { [marks] result in outcomes.yield(CommitOutcome(marks: marks, result: result)) }
    }

    /// Fetches the open channels' index caches, to be stored with the next compaction.
    private func refreshIndexSnapshots(_ stream: ManagedStream) {
        let key = stream.id
        for (which, opening) in stream.channels {
            Task { [weak self] in
                guard let channel = try? await opening.value else { return }
                let snapshot = await channel.indexSnapshot()
                await self?.cacheIndexSnapshot(key, which, snapshot)
            }
        }
    }

    private func cacheIndexSnapshot(_ key: Key, _ which: StreamChannel, _ snapshot: BoxIndexSnapshot) {
        streams[key]?.indexSnapshots[which] = snapshot.anchors.isEmpty ? nil : snapshot
    }

    static let compactAfterRows = 512
    static let compactAfterBytes = 4 << 20

    private static func approximateSize(_ record: CheckpointRecord) -> Int {
        switch record.delta {
        case .appended(let bytes): return bytes.count + 16
        case .frameCreated(_, _, _, let ciphertext): return ciphertext.count + 24
        case .frameReceived(let frame): return frame.data.count + 64
        default: return 16
        }
    }

    /// Processes a group commit's outcome (in commit order): the machines learn what is durable.
    ///
    /// Nothing is marked after a failure, not even by a later commit that succeeded: the
    /// failed one may have held earlier records of the same streams.
    private func groupCommitEnded(_ outcome: CommitOutcome) {
        groupCommitsInFlight -= 1
        if case .failure(let error) = outcome.result { fail(error) }
        guard fatalError == nil else { return }
        let current = now
        for (key, sequence) in outcome.marks {
            guard let stream = streams[key] else { continue }
            stream.machine.markDurable(through: sequence, now: current)
            step(stream)
        }
        finishCommit()
    }

    /// After a commit: hands the store to a waiting direct commit once no group commit is in
    /// flight, else queues the next group commit.
    private func finishCommit() {
        if !commitWaiters.isEmpty {
            guard groupCommitsInFlight == 0, !directCommitRunning else { return }
            directCommitRunning = true
            commitWaiters.removeFirst().resume()
        } else {
            commitIfIdle()
        }
    }

    /// A commit failed: stop everything at once and report. Nothing is retried.
    func fail(_ error: any Error) {
        guard fatalError == nil else { return }
        fatalError = error
        for waiter in commitWaiters { waiter.resume() }
        commitWaiters.removeAll()
        logger.critical("committing stream state failed; stopping", metadata: ["error": "\(error)"])
        for stream in streams.values {
            stream.machine.halt()
            for running in stream.running.values { running.operation.cancel() }
            stream.running.removeAll()
            wake(stream)
        }
        timerTask?.cancel()
        onFatal(error)
    }

    /// Performs a commit of its own (creation, removal) and waits for it.
    ///
    /// Commits never overlap: this waits until no group commit is in flight, so a removal can
    /// never be applied before a batch that still holds the stream's records.
    func commitNow(_ batch: CommitBatch) async throws -> [StoredStreamID] {
        if directCommitRunning || groupCommitsInFlight > 0 || !commitWaiters.isEmpty {
            await waitForCommitTurn()
        } else {
            directCommitRunning = true
        }
        defer {
            directCommitRunning = false
            finishCommit()
        }
        if let fatalError { throw fatalError }
        do {
            return try await database.commit(batch)
        } catch {
            fail(error)
            throw error
        }
    }

    /// Parks a direct commit until ``finishCommit()`` hands it the store (or a failure stops
    /// everything); a method of the actor, so the list is only touched on it (invariant 8).
    private func waitForCommitTurn() async {
        await withCheckedContinuation { continuation in
            self.preconditionIsolated()
            commitWaiters.append(continuation)
        }
    }

    // MARK: - kpclientd

    /// Holds or releases operations as the kpclientd session goes down or up.
    ///
    /// When it comes up, streams made for another box size than kpclientd's geometry now has
    /// are stopped with `geometryChanged` (their frames could never be stored).
    func kpclientdChanged(up: Bool) async {
        guard kpclientdUp != up else { return }
        kpclientdUp = up
        if up, let size = await link.boxSize {
            for stream in streams.values where stream.hostFailure == nil && stream.machine.checkpoint.boxSize != size {
                let failure = StreamError(
                    .geometryChanged,
                    "the stream uses \(stream.machine.checkpoint.boxSize)-byte boxes but kpclientd's geometry now has \(size)-byte boxes")
                logger.error("stream stopped: box size changed", metadata: ["stream": "\(stream.name)"])
                stop(stream, failure)
            }
        }
        publish(.kpclientd(connected: up))
        if up { dispatch() }
        for stream in streams.values { wake(stream) }
    }

    // MARK: - Shutdown

    /// Stops starting operations, waits for the pending commits (bounded by the caller), and
    /// halts every machine. Durable state is complete: nothing is lost.
    func shutdown() async {
        stopping = true
        timerTask?.cancel()
        while groupCommitsInFlight > 0 || directCommitRunning || !pendingRecords.isEmpty, fatalError == nil {
            commitIfIdle()
            try? await Task.sleep(for: .milliseconds(5))
        }
        for stream in streams.values {
            for running in stream.running.values { running.operation.cancel() }
            stream.machine.halt()
            wake(stream)
        }
        for subscriber in subscribers.values { subscriber.continuation.finish() }
        subscribers.removeAll()
    }

    var isStopping: Bool { stopping }

    // MARK: - Events

    /// Subscribes to events of the named streams (`nil`: all streams).
    func subscribe(names: Set<String>?) -> (UInt64, AsyncStream<IPCEvent>) {
        let (stream, continuation) = AsyncStream.makeStream(of: IPCEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = Subscriber(names: names, continuation: continuation)
        return (id, stream)
    }

    /// Ends a subscription.
    func unsubscribe(_ id: UInt64) {
        subscribers.removeValue(forKey: id)?.continuation.finish()
    }

    func publish(_ event: IPCEvent, stream name: String? = nil) {
        for subscriber in subscribers.values {
            if let name, let names = subscriber.names, !names.contains(name) { continue }
            subscriber.continuation.yield(event)
        }
    }

    /// Tells subscribers what changed in a stream since the last announcement.
    private func announce(_ stream: ManagedStream) {
        guard !subscribers.isEmpty else { return }
        let checkpoint = stream.machine.checkpoint
        let name = stream.name.rawValue
        if checkpoint.deliveredBytes > stream.announcedDelivered {
            stream.announcedDelivered = checkpoint.deliveredBytes
            publish(.dataAvailable(name: stream.name, offset: checkpoint.deliveredBytes), stream: name)
        }
        let acked = Self.acknowledgedBytes(checkpoint)
        if acked > stream.announcedAcked {
            stream.announcedAcked = acked
            publish(.writeAcknowledged(name: stream.name, offset: acked), stream: name)
        }
        if !stream.announcedPeerClosed, checkpoint.peerFinOffset != nil {
            stream.announcedPeerClosed = true
            publish(.peerClosed(name: stream.name), stream: name)
        }
        if !stream.announcedFailure, let failure = stream.failure {
            stream.announcedFailure = true
            publish(.streamFailed(name: stream.name, error: IPCError(.streamFailed, failure.message)), stream: name)
        }
    }
}
