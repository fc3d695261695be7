#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBOR
import Logging
import ThinWire

/// Identifies one client connection inside the simulator.
struct ConnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    let raw: UInt64
    static func < (a: Self, b: Self) -> Bool { a.raw < b.raw }
    var description: String { "conn#\(raw)" }
}

/// Where the core sends a connection's outbound frames, and how it closes it.
final class ConnectionSink: Sendable {
    private let continuation: AsyncStream<[UInt8]>.Continuation

    init(continuation: AsyncStream<[UInt8]>.Continuation) {
        self.continuation = continuation
    }

    func send(_ frame: [UInt8]) { continuation.yield(frame) }

    /// Stops the writer after the frames already queued; the connection then closes.
    func finish() { continuation.finish() }
}

/// A frame the daemon would fail to decode into its request struct: the connection is dropped.
struct ProtocolViolation: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// The simulator's state and behaviour: connections, sessions, the shared box store, the
/// mixnet-path scheduler and every request handler. All mutable state lives in this actor.
actor SimCore {
    // MARK: Types

    final class Connection {
        let id: ConnectionID
        let sink: ConnectionSink
        /// The session (AppID) this connection serves; `nil` once detached (closed, closed by
        /// `thin_close`, or taken over by a resuming connection).
        var appID: [UInt8]?
        var queue: [ThinMessage] = []
        var spaceWaiter: CheckedContinuation<Void, Never>?
        var isReaderBlocked = false
        var pendingOutboundBytes = 0
        var framesReceived = 0
        var closed = false

        init(id: ConnectionID, sink: ConnectionSink, appID: [UInt8]) {
            self.id = id
            self.sink = sink
            self.appID = appID
        }
    }

    final class Operation {
        let serial: UInt64
        var queryID: [UInt8]
        var task: Task<Void, Never>?
        /// The box a parked read waits for (``SimCore/parkedReads``); it has no task meanwhile.
        var parkedOn: [UInt8]?
        /// The envelope hash (ARQ) or write-cap hash (copy).
        var hash: [UInt8] = []
        /// The serial of the courier the operation is bound to for its whole life.
        var courier: Int = 0
        init(serial: UInt64, queryID: [UInt8]) {
            self.serial = serial
            self.queryID = queryID
        }
    }

    /// An ARQ resend waiting in a session's resend queue for a send tick.
    struct TickWaiter {
        let serial: UInt64
        let continuation: CheckedContinuation<Void, any Error>
    }

    final class Session {
        let appID: [UInt8]
        var token: [UInt8]?
        var connectionID: ConnectionID?
        var graceTask: Task<Void, Never>?
        /// Every ARQ in flight, by serial: a replay makes a second one for the same envelope.
        /// Changed only through ``addARQ(_:)``, ``removeARQ(_:)`` and ``removeAllARQs()``.
        private(set) var arq: [UInt64: Operation] = [:]
        /// How many ARQs in ``arq`` each envelope hash has (a replay's duplicate is found
        /// without scanning every ARQ in flight).
        private var arqCountByHash: [[UInt8]: Int] = [:]
        /// The ARQ a cancel reaches for each envelope hash (the newest; cleared when any ARQ
        /// of that hash finishes, as the daemon's `arqEnvelopeHashMap` is).
        var arqByHash: [[UInt8]: UInt64] = [:]
        var copies: [[UInt8]: Operation] = [:]
        /// ARQ resends waiting for a send tick (at most `resendQueueCapacity`).
        var resendWaiters: [TickWaiter] = []
        var legacyQueue: [[UInt8]] = []
        var detachedAt: ContinuousClock.Instant?
        init(appID: [UInt8], connectionID: ConnectionID) {
            self.appID = appID
            self.connectionID = connectionID
        }
        var operationCount: Int { arq.count + copies.count }

        /// Whether an ARQ of envelope `hash` is in flight.
        func hasARQ(hash: [UInt8]) -> Bool { arqCountByHash[hash] != nil }

        /// Records an ARQ in flight.
        func addARQ(_ op: Operation) {
            arq[op.serial] = op
            arqCountByHash[op.hash, default: 0] += 1
        }

        /// Forgets the ARQ `serial` and returns it, if it is in flight.
        func removeARQ(_ serial: UInt64) -> Operation? {
            guard let op = arq.removeValue(forKey: serial) else { return nil }
            if let count = arqCountByHash[op.hash], count > 1 {
                arqCountByHash[op.hash] = count - 1
            } else {
                arqCountByHash[op.hash] = nil
            }
            return op
        }

        /// Forgets every ARQ.
        func removeAllARQs() {
            arq.removeAll()
            arqCountByHash.removeAll()
        }
    }

    struct BoxWaiter {
        let serial: UInt64
        let continuation: CheckedContinuation<Void, Never>
    }

    // MARK: State

    let configuration: KpclientdSimConfiguration
    let logger: Logger
    let sphinxGeometry: SphinxGeometry
    let pigeonholeGeometry: PigeonholeGeometry
    let instanceToken: [UInt8]
    let sealer: EnvelopeSealer
    let pki: SimPKI
    let responseKeys: [String]

    /// The couriers present in the PKI document.
    var couriers: [SimCourier] = []
    /// Serials of couriers that have left.
    var departedCouriers: Set<Int> = []
    /// The identity hashes of departed couriers (replies of their hung operations name them).
    var departedCourierHashes: [Int: [UInt8]] = [:]
    var nextCourierSerial = 0
    /// Each courier's dedup cache, by courier serial and envelope hash.
    var courierCaches: [Int: [[UInt8]: CourierCacheEntry]] = [:]
    /// Counters of the network model (see ``KpclientdSimStatistics``).
    var model = ModelCounters()

    var random: SimRandom
    var store: BoxStore
    var rate: Double?
    var currentEpoch: UInt64
    var connections: [ConnectionID: Connection] = [:]
    var sessions: [[UInt8]: Session] = [:]
    var tokens: [[UInt8]: [UInt8]] = [:]
    var nextConnection: UInt64 = 1
    var nextSerial: UInt64 = 1
    var lastServed: ConnectionID?
    var boxWaiters: [[UInt8]: [BoxWaiter]] = [:]
    /// Reads of the unpaced model parked until their box is written, by box ID.
    var parkedReads: [[UInt8]: [ParkedRead]] = [:]
    var schedulerWake: CheckedContinuation<Void, Never>?
    var backgroundTasks: [UInt64: Task<Void, Never>] = [:]
    var saveScheduled = false
    /// How long the last save of the state file took.
    var lastSaveCost = Duration.zero
    var savedGeneration: UInt64 = 0
    /// The length of the state file's valid part: where the next append goes.
    var stateLogLength = 0
    /// Whether the next save rewrites the state file whole (no file yet, a version 1 file, a
    /// torn append at its end, or a failed save).
    var stateNeedsCompaction = true
    var shuttingDown = false
    var totalFramesReceived = 0
    /// Requests received since start, by message key (unknown keys as `other`).
    var requestsByKind: [String: Int] = [:]
    static let knownRequestKeys = Set(ThinKey.Request.all)
    var joinedReplays = 0
    var refusedConnections = 0
    var guardClosedConnections = 0

    init(configuration: KpclientdSimConfiguration) throws(SimStateError) {
        self.configuration = configuration
        self.logger = configuration.logger
        let pair = PigeonholeGeometry.simulatedPair(maxPlaintextPayloadLength: configuration.maxPlaintextPayloadLength)
        sphinxGeometry = pair.sphinx
        pigeonholeGeometry = pair.pigeonhole
        var random = SimRandom(seed: configuration.seed)
        instanceToken = SimCrypto.randomBytes(ThinSizes.instanceToken)
        var envelopeKey = random.bytes(32)
        var loaded: StateFile.Contents?
        if let path = configuration.statePath {
            loaded = try StateFile.load(path: path, capacity: configuration.maxBoxes, maxPlaintextLength: configuration.maxPlaintextPayloadLength)
            if let loaded { envelopeKey = loaded.envelopeKey }
            if StateFile.directoryIsShared(of: path) {
                configuration.logger.warning(
                    "the state file holds box plaintext and the envelope key in the clear; its directory should be mode 0700",
                    metadata: ["directory": "\(StateFile.directory(of: path))"])
            }
        }
        sealer = EnvelopeSealer(key: envelopeKey, geometry: pair.pigeonhole)
        let now = UInt64(max(0, time(nil)))
        currentEpoch = SimPKI.epoch(unixSeconds: now)
        pki = SimPKI(random: &random, sphinx: pair.sphinx, genesisEpoch: currentEpoch)
        var couriers = [SimCourier(serial: 0, identityKey: pki.serviceIdentityKey)]
        for serial in 1..<configuration.courierCount { couriers.append(SimCourier(serial: serial, identityKey: random.bytes(32))) }
        self.couriers = couriers
        nextCourierSerial = configuration.courierCount
        self.random = random
        var store = BoxStore(
            capacity: configuration.maxBoxes, maxPlaintextLength: configuration.maxPlaintextPayloadLength, ttl: configuration.boxTTL,
            tracksChanges: configuration.statePath != nil)
        if let loaded {
            store.load(loaded.boxes)
            stateLogLength = loaded.logLength
            stateNeedsCompaction = loaded.needsCompaction
            if loaded.needsCompaction && loaded.logLength > 0 {
                configuration.logger.info("the state file will be rewritten at the next save (an older version, or an append cut short)")
            }
        }
        self.store = store
        savedGeneration = store.generation
        rate = configuration.rate
        responseKeys = ThinKey.Event.all + ThinKey.Request.all.filter {
            $0 != ThinKey.Request.sessionToken && $0 != ThinKey.Request.thinClose && $0 != ThinKey.Request.sendMessage
        }.map(ThinKey.Reply.of)
    }

    /// Starts the background loops (scheduler, epoch clock, periodic disconnects).
    func startBackgroundLoops() {
        spawn { core in await core.schedulerLoop() }
        spawn { core in await core.epochLoop() }
        if configuration.courierChurnInterval != nil {
            spawn { core in await core.churnLoop() }
        }
        if let interval = configuration.disconnectEvery {
            spawn { core in
                while !Task.isCancelled {
                    do { try await Task.sleep(for: interval) } catch { return }
                    await core.disconnectAll(reason: "periodic disconnect")
                }
            }
        }
    }

    /// Runs `body` as a tracked background task, cancelled at shutdown.
    @discardableResult
    func spawn(_ body: @escaping @Sendable (SimCore) async -> Void) -> UInt64 {
        let serial = makeSerial()
        let task = Task { [weak self] in
            guard let self else { return }
            await body(self)
            await self.forget(serial)
        }
        backgroundTasks[serial] = task
        return serial
    }

    private func forget(_ serial: UInt64) { backgroundTasks[serial] = nil }

    func makeSerial() -> UInt64 {
        defer { nextSerial += 1 }
        return nextSerial
    }

    func latency() -> Duration {
        let seconds = random.exponential(mean: configuration.meanLatency.seconds)
        return .nanoseconds(Int64(min(seconds, 86_400) * 1e9))
    }

    /// Sleeps for one random mixnet latency.
    ///
    /// Always suspends (a yield at zero latency), so a loop built from it cannot monopolise the
    /// actor, and throws `CancellationError` once shutdown has begun.
    func sleepLatency() async throws {
        if shuttingDown { throw CancellationError() }
        let d = latency()
        if d > .zero { try await Task.sleep(for: d) } else { await Task.yield() }
        if shuttingDown { throw CancellationError() }
    }

    // MARK: Frames

    /// The frame for `message`: Go-style (every response key, nulls but one) or one-key.
    func frame(_ message: ThinMessage) -> [UInt8] {
        guard configuration.goStyleResponses else { return message.frame }
        var entries: [CBORMapEntry] = []
        entries.reserveCapacity(responseKeys.count + 1)
        var placed = false
        for key in responseKeys {
            if key == message.key {
                entries.append(CBORMapEntry(.text(key), message.body))
                placed = true
            } else {
                entries.append(CBORMapEntry(.text(key), .null))
            }
        }
        if !placed { entries.append(CBORMapEntry(.text(message.key), message.body)) }
        return ThinFrame.encode(.map(entries))
    }

    func send(_ message: ThinMessage, to connection: Connection) {
        guard !connection.closed else { return }
        let bytes = frame(message)
        connection.pendingOutboundBytes += bytes.count
        if connection.pendingOutboundBytes > configuration.maxPendingOutboundBytes {
            logger.warning("client not reading; disconnecting", metadata: ["connection": "\(connection.id)"])
            close(connection)
            return
        }
        connection.sink.send(bytes)
    }

    /// Sends a reply to whichever connection currently serves the session; with `queueIfAway`
    /// (legacy replies only) it is queued (at most `maxQueuedLegacyReplies`) while the client is away.
    func send(_ message: ThinMessage, toSession appID: [UInt8], queueIfAway: Bool = false) {
        guard let session = sessions[appID] else { return }
        // A connection being closed counts as away: writing to it would lose the reply.
        if let id = session.connectionID, let connection = connections[id], !connection.closed {
            send(message, to: connection)
        } else if queueIfAway, session.token != nil, session.legacyQueue.count < configuration.maxQueuedLegacyReplies {
            session.legacyQueue.append(frame(message))
        }
    }

    func didWrite(_ id: ConnectionID, bytes: Int) {
        connections[id]?.pendingOutboundBytes -= bytes
    }

    // MARK: Connection lifecycle

    /// Registers a new connection and sends the two handshake frames; `nil` if over the limit.
    func connect(sink: ConnectionSink) -> ConnectionID? {
        guard !shuttingDown, connections.count < configuration.maxConnections else { return nil }
        let id = ConnectionID(raw: nextConnection)
        nextConnection += 1
        let appID = random.bytes(ThinSizes.appID)
        let session = Session(appID: appID, connectionID: id)
        sessions[appID] = session
        enforceSessionLimit()
        let connection = Connection(id: id, sink: sink, appID: appID)
        connections[id] = connection
        send(connectionStatusEvent(), to: connection)
        send(pkiDocumentEvent(epoch: currentEpoch), to: connection)
        logger.debug("client connected", metadata: ["connection": "\(id)"])
        return id
    }

    /// Why ``connect(sink:)`` refused a connection, for the log (and counts the refusal).
    func noteRefusal() -> String {
        refusedConnections += 1
        return shuttingDown ? "shutting down" : "at the limit of \(configuration.maxConnections) connections"
    }

    func connectionStatusEvent() -> ThinMessage {
        ThinMessage(ThinKey.Event.connectionStatus, [
            (ThinKey.Field.isConnected, .bool(configuration.isConnectedToMixnet)),
            (ThinKey.Field.err, .null),
            (ThinKey.Field.instanceToken, .bytes(instanceToken)),
            (ThinKey.Field.sphinxGeometry, sphinxGeometry.cborValue),
            (ThinKey.Field.pigeonholeGeometry, pigeonholeGeometry.cborValue),
        ])
    }

    func pkiDocumentEvent(epoch: UInt64) -> ThinMessage {
        ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .bytes(pki.document(epoch: epoch, couriers: couriers, lambdaP: publishedLambdaP)))])
    }

    /// Closes a connection from the simulator's side (its frames already queued are still written).
    func close(_ connection: Connection) {
        guard !connection.closed else { return }
        connection.closed = true
        connection.queue.removeAll()
        connection.spaceWaiter?.resume()
        connection.spaceWaiter = nil
        connection.sink.finish()
    }

    /// Counts a connection closed by its watchdog or the inbound budget.
    func noteGuardClosed() { guardClosedConnections += 1 }

    /// Called when a connection has ended, whoever closed it.
    func disconnected(_ id: ConnectionID) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        close(connection)
        logger.debug("client disconnected", metadata: ["connection": "\(id)"])
        guard let appID = connection.appID, let session = sessions[appID], session.connectionID == id else { return }
        session.connectionID = nil
        session.detachedAt = .now
        if session.token == nil {
            destroy(session)
        } else {
            let grace = configuration.grace
            session.graceTask = Task { [weak self] in
                do { try await Task.sleep(for: grace) } catch { return }
                await self?.expire(appID: appID)
            }
        }
    }

    private func expire(appID: [UInt8]) {
        guard let session = sessions[appID], session.connectionID == nil else { return }
        logger.debug("session grace period expired")
        destroy(session)
    }

    func destroy(_ session: Session) {
        session.graceTask?.cancel()
        session.graceTask = nil
        for op in session.arq.values { stop(op) }
        for op in session.copies.values { op.task?.cancel() }
        session.removeAllARQs()
        session.arqByHash.removeAll()
        session.copies.removeAll()
        let waiters = session.resendWaiters
        session.resendWaiters.removeAll()
        for waiter in waiters { waiter.continuation.resume(throwing: CancellationError()) }
        session.legacyQueue.removeAll()
        if let token = session.token, tokens[token] == session.appID { tokens[token] = nil }
        sessions[session.appID] = nil
    }

    private func enforceSessionLimit() {
        while sessions.count > configuration.maxSessions {
            let absent = sessions.values.filter { $0.connectionID == nil }
            guard let oldest = absent.min(by: { ($0.detachedAt ?? .now) < ($1.detachedAt ?? .now) }) else { return }
            destroy(oldest)
        }
    }

    func disconnectAll(reason: String) {
        logger.info("dropping all client connections", metadata: ["reason": "\(reason)"])
        for connection in connections.values { close(connection) }
    }

    /// Sends `shutdown_event` everywhere, lets it reach the clients, then closes everything.
    ///
    /// The connections stay open until the event is written (at most one second) plus a 100 ms
    /// linger, so that a client reading the event and the end of stream together (the Python
    /// client checks for end of stream before dispatching what it read) still sees the event
    /// first and reports the disconnect as graceful.
    func shutdown() async {
        guard !shuttingDown else { return }
        shuttingDown = true
        for connection in connections.values {
            send(ThinMessage(ThinKey.Event.shutdown, body: .map([])), to: connection)
        }
        let deadline = ContinuousClock.now + .seconds(1)
        while connections.values.contains(where: { $0.pendingOutboundBytes > 0 && !$0.closed }) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if !connections.isEmpty { try? await Task.sleep(for: .milliseconds(100)) }
        for connection in connections.values { close(connection) }
        for session in sessions.values {
            session.graceTask?.cancel()
            for op in session.arq.values { stop(op) }
            for op in session.copies.values { op.task?.cancel() }
            let waiters = session.resendWaiters
            session.resendWaiters.removeAll()
            for waiter in waiters { waiter.continuation.resume(throwing: CancellationError()) }
        }
        for task in backgroundTasks.values { task.cancel() }
        backgroundTasks.removeAll()
        schedulerWake?.resume()
        schedulerWake = nil
        for waiters in boxWaiters.values { for waiter in waiters { waiter.continuation.resume() } }
        boxWaiters.removeAll()
        parkedReads.removeAll()
        saveNow()
    }

    // MARK: Receiving

    /// Handles one decoded frame from a connection; returns `false` if the connection must close.
    func receive(_ id: ConnectionID, _ value: CBORValue) async -> Bool {
        guard let connection = connections[id], !connection.closed else { return false }
        connection.framesReceived += 1
        totalFramesReceived += 1
        let message: ThinMessage
        do {
            message = try ThinMessage(decoding: value)
        } catch {
            if error.code == .notAMap {
                logger.debug("frame is not a map; closing", metadata: ["connection": "\(id)"])
                return false
            }
            return true  // no recognisable request key: silently dropped, as the daemon does
        }
        // Keys are the client's: any other than the reference's count as one kind, so the map stays bounded.
        requestsByKind[Self.knownRequestKeys.contains(message.key) ? message.key : "other", default: 0] += 1
        do {
            switch message.key {
            case ThinKey.Request.sessionToken:
                try handleSessionToken(connection, message.fields)
            case ThinKey.Request.thinClose:
                handleThinClose(connection)
                return false
            case _ where ThinKey.Request.mixnetPath.contains(message.key):
                await enqueue(message, on: connection)
            default:
                if let appID = connection.appID, let reply = try handleLocal(message, appID: appID) {
                    send(reply, to: connection)
                }
            }
        } catch {
            logger.debug("undecodable request; closing", metadata: ["connection": "\(id)", "reason": "\(error)"])
            return false
        }
        return !connection.closed
    }

    private func handleSessionToken(_ connection: Connection, _ fields: ThinFields) throws(ProtocolViolation) {
        let request = GoFields(fields)
        guard let currentAppID = connection.appID, let current = sessions[currentAppID] else { return }
        guard let token = try request.fixed(ThinKey.Field.clientInstanceToken, ThinSizes.instanceToken) else {
            send(sessionTokenReply(appID: currentAppID, resumed: false), to: connection)
            return
        }
        if let existingAppID = tokens[token], existingAppID != currentAppID, let existing = sessions[existingAppID] {
            existing.graceTask?.cancel()
            existing.graceTask = nil
            existing.detachedAt = nil
            if let oldID = existing.connectionID, let old = connections[oldID] {
                old.appID = nil  // taken over; the old connection no longer serves this session
                close(old)
            }
            destroy(current)  // the fresh session this connection started with
            connection.appID = existingAppID
            existing.connectionID = connection.id
            let queued = existing.legacyQueue
            existing.legacyQueue.removeAll()
            for frame in queued where !connection.closed {
                connection.pendingOutboundBytes += frame.count
                connection.sink.send(frame)
            }
            send(sessionTokenReply(appID: existingAppID, resumed: true), to: connection)
            if !existing.resendWaiters.isEmpty { wakeScheduler() }
            logger.debug("session resumed", metadata: ["connection": "\(connection.id)", "flushed": "\(queued.count)"])
        } else {
            if let old = current.token, old != token, tokens[old] == currentAppID { tokens[old] = nil }
            current.token = token
            tokens[token] = currentAppID
            send(sessionTokenReply(appID: currentAppID, resumed: false), to: connection)
        }
    }

    private func sessionTokenReply(appID: [UInt8], resumed: Bool) -> ThinMessage {
        ThinMessage(ThinKey.Event.sessionTokenReply, [(ThinKey.Field.appID, .bytes(appID)), (ThinKey.Field.resumed, .bool(resumed))])
    }

    private func handleThinClose(_ connection: Connection) {
        if let appID = connection.appID, let session = sessions[appID] { destroy(session) }
        connection.appID = nil
        close(connection)
    }

    // MARK: Mixnet path: queue and scheduler

    private func enqueue(_ message: ThinMessage, on connection: Connection) async {
        while connection.queue.count >= configuration.mixnetQueueCapacity && !connection.closed {
            if !connection.isReaderBlocked { model.requestQueueFullStalls += 1 }
            connection.isReaderBlocked = true
            await withCheckedContinuation { connection.spaceWaiter = $0 }
            connection.isReaderBlocked = false
        }
        guard !connection.closed else { return }
        connection.queue.append(message)
        if rate == nil {
            releaseQueued(connection)
        } else {
            schedulerWake?.resume()
            schedulerWake = nil
        }
    }

    private func releaseQueued(_ connection: Connection) {
        while !connection.queue.isEmpty {
            let message = connection.queue.removeFirst()
            release(message, from: connection)
        }
        connection.spaceWaiter?.resume()
        connection.spaceWaiter = nil
    }

    /// Changes the release rate; `nil` releases everything queued at once.
    func setRate(_ newRate: Double?) {
        rate = newRate
        if newRate == nil {
            for connection in connections.values.sorted(by: { $0.id < $1.id }) { releaseQueued(connection) }
            for session in sessions.values {
                let waiters = session.resendWaiters
                session.resendWaiters.removeAll()
                for waiter in waiters { waiter.continuation.resume() }
            }
        }
        wakeScheduler()
        let event = pkiDocumentEvent(epoch: currentEpoch)  // LambdaP changed
        for connection in connections.values { send(event, to: connection) }
    }

    func wakeScheduler() {
        schedulerWake?.resume()
        schedulerWake = nil
    }

    /// λP as published in the PKI document.
    var publishedLambdaP: Double { rate.map { $0 / 1000 } ?? 1.0 }

    /// Resends waiting in the resend queue of the session `connection` serves.
    private func resendWaiterCount(_ connection: Connection) -> Int {
        guard let appID = connection.appID, let session = sessions[appID], session.connectionID == connection.id else { return 0 }
        return session.resendWaiters.count
    }

    private func nextQueuedConnection() -> Connection? {
        let ordered = connections.values.filter { ($0.queue.count + resendWaiterCount($0)) > 0 && !$0.closed }.sorted { $0.id < $1.id }
        guard !ordered.isEmpty else { return nil }
        if let last = lastServed, let next = ordered.first(where: { $0.id > last }) { return next }
        return ordered.first
    }

    private func schedulerLoop() async {
        while !Task.isCancelled && !shuttingDown {
            guard let rate else {
                await withCheckedContinuation { schedulerWake = $0 }
                continue
            }
            if nextQueuedConnection() == nil {
                await withCheckedContinuation { schedulerWake = $0 }
                continue
            }
            let delay = random.exponential(mean: 1 / rate)
            do { try await Task.sleep(for: .nanoseconds(Int64(min(delay, 86_400) * 1e9))) } catch { return }
            guard self.rate != nil, let connection = nextQueuedConnection() else { continue }
            lastServed = connection.id
            model.sendTicks += 1
            // Resends first, then requests not yet sent.
            if let appID = connection.appID, let session = sessions[appID], !session.resendWaiters.isEmpty {
                let waiter = session.resendWaiters.removeFirst()
                waiter.continuation.resume()
                continue
            }
            let message = connection.queue.removeFirst()
            connection.spaceWaiter?.resume()
            connection.spaceWaiter = nil
            release(message, from: connection)
        }
    }

    private func release(_ message: ThinMessage, from connection: Connection) {
        guard let appID = connection.appID else { return }
        do {
            switch message.key {
            case ThinKey.Request.sendMessage: try releaseSendMessage(message.fields, appID: appID)
            case ThinKey.Request.startResendingEncryptedMessage: try startARQ(message.fields, appID: appID)
            case ThinKey.Request.startResendingCopyCommand: try startCopy(message.fields, appID: appID)
            default: break
            }
        } catch {
            logger.debug("undecodable mixnet request; closing", metadata: ["connection": "\(connection.id)", "reason": "\(error)"])
            close(connection)
        }
    }

    // MARK: Epochs

    private func epochLoop() async {
        while !Task.isCancelled {
            let now = UInt64(max(0, time(nil)))
            let next = (SimPKI.epoch(unixSeconds: now) + 1) * SimPKI.epochPeriodSeconds
            do { try await Task.sleep(for: .seconds(Int64(next - now))) } catch { return }
            currentEpoch = SimPKI.epoch(unixSeconds: UInt64(max(0, time(nil))))
            let event = pkiDocumentEvent(epoch: currentEpoch)
            for connection in connections.values { send(event, to: connection) }
        }
    }

    // MARK: Box waiting

    /// Suspends until box `boxID` is written.
    ///
    /// - Throws: `CancellationError` when the task is cancelled or the simulator is shutting down
    ///   (before or after waiting), so that polling loops end instead of spinning: at zero
    ///   latency nothing else in such a loop suspends, and a spinning loop would keep the actor
    ///   busy and starve `shutdown()`.
    func waitForBox(_ boxID: [UInt8]) async throws {
        if shuttingDown { throw CancellationError() }
        try Task.checkCancellation()
        await waitForBoxWrite(boxID)
        if shuttingDown { throw CancellationError() }
        try Task.checkCancellation()
    }

    private func waitForBoxWrite(_ boxID: [UInt8]) async {
        let serial = makeSerial()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled || shuttingDown {
                    continuation.resume()
                } else {
                    boxWaiters[boxID, default: []].append(BoxWaiter(serial: serial, continuation: continuation))
                }
            }
        } onCancel: {
            Task { await self.cancelWaiter(boxID: boxID, serial: serial) }
        }
    }

    /// Stops an ARQ operation: cancels its task, or takes it off its box if it is parked.
    func stop(_ op: Operation) {
        op.task?.cancel()
        unpark(op)
    }

    private func cancelWaiter(boxID: [UInt8], serial: UInt64) {
        guard var waiters = boxWaiters[boxID], let i = waiters.firstIndex(where: { $0.serial == serial }) else { return }
        let waiter = waiters.remove(at: i)
        boxWaiters[boxID] = waiters.isEmpty ? nil : waiters
        waiter.continuation.resume()
    }

    /// Applies a write to the store, wakes readers waiting for the box, and schedules a save.
    func storeApply(_ envelope: OpenedEnvelope) -> ReplicaErrorCode {
        let code = store.apply(envelope)
        if code == .success {
            if let waiters = boxWaiters.removeValue(forKey: envelope.boxID) {
                for waiter in waiters { waiter.continuation.resume() }
            }
            if let reads = parkedReads.removeValue(forKey: envelope.boxID) {
                for read in reads { resumeParked(read, boxID: envelope.boxID) }
            }
            scheduleSave()
        }
        return code
    }

    // MARK: Persistence

    /// Schedules a save of the state file: 100 ms after a change, or later when saving is
    /// expensive.
    ///
    /// The delay is at least 20 times what the last save took, which keeps saving below about
    /// 5 % of the simulator's time (a save appends the changed boxes; a compaction rewrites
    /// every box).
    private func scheduleSave() {
        guard configuration.statePath != nil, !saveScheduled, store.generation != savedGeneration else { return }
        saveScheduled = true
        let delay = max(.milliseconds(100), lastSaveCost * 20)
        spawn { core in
            try? await Task.sleep(for: delay)
            await core.saveNow()
        }
    }

    /// Saves the changes since the last save: appends their records to the state file, or
    /// rewrites it whole (compaction) when it is due or the file cannot take an append.
    func saveNow() {
        saveScheduled = false
        guard let path = configuration.statePath, store.generation != savedGeneration else { return }
        let clock = ContinuousClock()
        let started = clock.now
        let changes = store.takeChanges()
        let limit = StateFile.maximumFileSize(capacity: configuration.maxBoxes, maxPlaintextLength: configuration.maxPlaintextPayloadLength)
        do {
            if !stateNeedsCompaction {
                var records: [UInt8] = []
                for boxID in changes {
                    StateLog.appendRecord(boxID: boxID, box: store.box(boxID), to: &records)
                }
                // What a compacted file would hold: its header (under 256 bytes) and a record per box.
                let live = 256 + store.count * StateLog.overhead + store.plaintextBytes
                if stateLogLength + records.count <= StateLog.compactionThreshold(liveLength: live, limit: limit) {
                    try StateLog.append(records, at: stateLogLength, path: path)
                    stateLogLength += records.count
                    savedGeneration = store.generation
                    lastSaveCost = clock.now - started
                    return
                }
            }
            // Compaction: a fresh file of the live boxes, replacing the old one atomically.
            stateNeedsCompaction = true
            let bytes = StateFile.encode(StateFile.Contents(envelopeKey: sealer.key, boxes: store.boxes), maxPlaintextLength: configuration.maxPlaintextPayloadLength)
            try StateFile.save(bytes, path: path)
            stateLogLength = bytes.count
            stateNeedsCompaction = false
            savedGeneration = store.generation
        } catch {
            // The file may end in part of an append: the next save rewrites it whole.
            stateNeedsCompaction = true
            logger.error("saving the state file failed", metadata: ["error": "\(error)"])
        }
        lastSaveCost = clock.now - started
    }

    // MARK: Statistics

    /// ARQ operations that hold a task now (parked reads hold none).
    func arqTaskCount() -> Int {
        sessions.values.reduce(0) { total, session in total + session.arq.values.filter { $0.task != nil }.count }
    }

    func statistics() -> KpclientdSimStatistics {
        KpclientdSimStatistics(
            connections: connections.count,
            sessions: sessions.count,
            storedBoxes: store.count,
            inFlightOperations: sessions.values.reduce(0) { $0 + $1.operationCount },
            blockedReads: boxWaiters.values.reduce(0) { $0 + $1.count } + parkedReads.values.reduce(0) { $0 + $1.count },
            queuedMixnetRequests: connections.values.reduce(0) { $0 + $1.queue.count },
            blockedReaders: connections.values.filter(\.isReaderBlocked).count,
            framesReceived: totalFramesReceived,
            joinedReplays: joinedReplays,
            queuedLegacyReplies: sessions.values.reduce(0) { $0 + $1.legacyQueue.count },
            refusedConnections: refusedConnections,
            guardClosedConnections: guardClosedConnections,
            sendTicks: model.sendTicks,
            ticksOnEmptyBoxReads: model.ticksOnEmptyBoxReads,
            arqRetransmissions: model.arqRetransmissions,
            arqsOnDepartedCouriers: sessions.values.reduce(0) { total, session in
                total + session.arq.values.filter { departedCouriers.contains($0.courier) }.count
                    + session.copies.values.filter { departedCouriers.contains($0.courier) }.count
            },
            courierDepartures: model.courierDepartures,
            arqsStrandedByDepartures: model.arqsStrandedByDepartures,
            resendQueueOverflows: model.resendQueueOverflows,
            requestQueueFullStalls: model.requestQueueFullStalls,
            queuedResends: sessions.values.reduce(0) { $0 + $1.resendWaiters.count },
            staleCacheAnswers: model.staleCacheAnswers,
            courierRedispatches: model.courierRedispatches,
            duplicatedReplays: model.duplicatedReplays,
            expiredBoxReads: store.expiredReads,
            requestsByKind: requestsByKind
        )
    }
}

/// Counters of the network model, kept by ``SimCore``.
struct ModelCounters {
    var sendTicks = 0
    var ticksOnEmptyBoxReads = 0
    var arqRetransmissions = 0
    var resendQueueOverflows = 0
    var requestQueueFullStalls = 0
    var staleCacheAnswers = 0
    var courierRedispatches = 0
    var duplicatedReplays = 0
    var courierDepartures = 0
    var arqsStrandedByDepartures = 0
}

/// A snapshot of the simulator's counters, for tests and diagnostics.
public struct KpclientdSimStatistics: Sendable, Hashable {
    /// Open client connections.
    public var connections: Int
    /// Sessions, connected or in their grace period.
    public var sessions: Int
    /// Boxes in the store.
    public var storedBoxes: Int
    /// Unfinished ARQ and copy operations.
    public var inFlightOperations: Int
    /// Reads waiting for a box to be written.
    public var blockedReads: Int
    /// Mixnet-path requests waiting in connection queues.
    public var queuedMixnetRequests: Int
    /// Connections whose reader is stopped because their queue is full.
    public var blockedReaders: Int
    /// Frames received since start.
    public var framesReceived: Int
    /// Replayed `start_resending_copy_command` requests that joined a copy already in flight
    /// (the courier de-duplicates copies by write cap).
    public var joinedReplays: Int
    /// Legacy replies queued for clients that are away.
    public var queuedLegacyReplies: Int
    /// Bytes all connections hold in incomplete inbound frames (bounded by
    /// ``KpclientdSimConfiguration/maxBufferedInboundBytes``).
    public var bufferedInboundBytes: Int = 0
    /// Connections refused since start (over ``KpclientdSimConfiguration/maxConnections`` or shutting down).
    public var refusedConnections: Int = 0
    /// Connections closed for a handshake or frame timeout, or for exceeding the inbound budget.
    public var guardClosedConnections: Int = 0
    /// Send ticks used since start (whenever a rate is set). With the network model: first
    /// sends, follow-up polls, retries of reads of empty boxes and retransmissions; without it,
    /// first sends only.
    public var sendTicks: Int = 0
    /// The part of ``sendTicks`` spent sending reads of boxes that were empty (or expired) at the time.
    public var ticksOnEmptyBoxReads: Int = 0
    /// ARQ packets resent because no reply came within the round trip plus the slop.
    public var arqRetransmissions: Int = 0
    /// ARQ and copy operations in flight bound to a courier that has left (they never complete).
    public var arqsOnDepartedCouriers: Int = 0
    /// Couriers that have left since start.
    public var courierDepartures: Int = 0
    /// ARQ and copy operations that were in flight on a courier when it left, since start
    /// (each hung until its client cancelled it; ``arqsOnDepartedCouriers`` counts those still hanging).
    public var arqsStrandedByDepartures: Int = 0
    /// Resends that found their connection's resend queue full and were re-armed.
    public var resendQueueOverflows: Int = 0
    /// Times a connection's request queue filled up and its reader stopped.
    public var requestQueueFullStalls: Int = 0
    /// Resends waiting for a send tick now.
    public var queuedResends: Int = 0
    /// Courier answers of BoxIDNotFound from the dedup cache while the box held data.
    public var staleCacheAnswers: Int = 0
    /// Cache refreshes (re-dispatches to the replicas) that couriers made at client polls.
    public var courierRedispatches: Int = 0
    /// Replayed `start_resending_encrypted_message` requests that started a second ARQ.
    public var duplicatedReplays: Int = 0
    /// Reads that found a box expired (see ``KpclientdSimConfiguration/boxTTL``).
    public var expiredBoxReads: Int = 0
    /// Requests received since start, by message key (`encrypt_read`, `start_resending_encrypted_message`, …;
    /// keys the reference does not define count as `other`).
    public var requestsByKind: [String: Int] = [:]
}

/// Go-like field decoding: what the daemon's CBOR decoder accepts, and what makes it drop a frame.
struct GoFields {
    let fields: ThinFields
    init(_ fields: ThinFields) { self.fields = fields }

    private func violation(_ key: String, _ what: String) -> ProtocolViolation {
        ProtocolViolation(reason: "\(fields.context).\(key): \(what)")
    }

    /// A fixed-size `[N]byte`: absent or null → `nil`; other types drop the frame; other
    /// lengths are truncated or zero-padded, as fxamacker/cbor does.
    func fixed(_ key: String, _ length: Int) throws(ProtocolViolation) -> [UInt8]? {
        guard let v = fields.raw(key) else { return nil }
        guard let b = v.bytes else { throw violation(key, "not a byte string") }
        return Bytes.fixed(b, length: length)
    }

    /// A `[]byte`: absent or null → `nil`.
    func blob(_ key: String) throws(ProtocolViolation) -> [UInt8]? {
        guard let v = fields.raw(key) else { return nil }
        guard let b = v.bytes else { throw violation(key, "not a byte string") }
        return b
    }

    /// A capability or index (`UnmarshalBinary` checks the length): absent or null → `nil`;
    /// a wrong type or length drops the frame.
    func capability(_ key: String, _ length: Int) throws(ProtocolViolation) -> [UInt8]? {
        guard let b = try blob(key) else { return nil }
        guard b.count == length else { throw violation(key, "must be \(length) bytes, got \(b.count)") }
        return b
    }

    func bool(_ key: String) throws(ProtocolViolation) -> Bool {
        guard let v = fields.raw(key) else { return false }
        guard let b = v.bool else { throw violation(key, "not a Boolean") }
        return b
    }

    func uint(_ key: String) throws(ProtocolViolation) -> UInt64 {
        guard let v = fields.raw(key) else { return 0 }
        guard let n = v.uint64 else { throw violation(key, "not an unsigned integer") }
        return n
    }

    func queryID() throws(ProtocolViolation) -> [UInt8] {
        try fixed(ThinKey.Field.queryID, ThinSizes.queryID) ?? [UInt8](repeating: 0, count: ThinSizes.queryID)
    }
}
