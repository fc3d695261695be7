import CBOR
import Logging
import NIOCore
import NIOPosix
import StreamCrypto
import ThinWire

/// A client of kpclientd, the Katzenpost client daemon, over the thin-client protocol.
///
/// A `ThinClient` keeps one connection to kpclientd (TCP, Unix or abstract Unix socket) and
/// reconnects with exponential backoff when it drops, resuming the daemon session with the same
/// client instance token and replaying every in-flight `start_resending_*` request byte for
/// byte. Requests are async methods; events are an `AsyncSequence` from ``events()``.
///
/// ```swift
/// let client = try await ThinClient.connect(configuration: ThinClientConfiguration(thinClientTOMLFile: path))
/// let keys = try await client.newKeypair(seed: seed)
/// let message = try await client.encryptWrite(plaintext: data, writeCapability: keys.writeCapability,
///                                             index: keys.firstMessageIndex)
/// _ = try await client.startResendingEncryptedMessage(.write(message, writeCapability: keys.writeCapability))
/// await client.close()
/// ```
///
/// Everything is bounded: frames by the 40 MiB cap, local requests by
/// ``ThinClientConfiguration/maxPendingLocalRequests``, mixnet-path requests by
/// ``ThinClientConfiguration/maxOutstandingMixnetRequests`` with bounded waiters. Mixnet-path
/// submissions are paced to the daemon's capacity (λP from the PKI document and its 16-request
/// queue, ``ThinClientConfiguration/daemonQueueCapacity``), writes before reads; every
/// `start_resending_encrypted_message` has a deadline of a few measured round trips
/// (``ThinClientConfiguration/operationDeadline``). Local requests never wait behind the pacer.
///
/// - Important: Call ``close()`` when done; it sends `thin_close` and stops reconnecting.
public actor ThinClient {
    /// The configuration the client was started with.
    public nonisolated let configuration: ThinClientConfiguration
    /// The random 16-byte client instance token, fixed for the client's lifetime (secret).
    nonisolated let instanceToken: [UInt8]
    let logger: Logger
    let group: any EventLoopGroup

    // MARK: Connection state

    /// One connection to the daemon.
    struct Link {
        let id: UInt64
        let channel: any Channel
        var statusSeen = false
        var documentSeen = false
        var tokenSent = false
        var otherFrames = 0
        var handshakeTimer: Task<Void, Never>?
    }

    enum Phase {
        /// Not connected; the supervisor is connecting or waiting to reconnect.
        case idle
        /// Connected; the handshake is running.
        case handshaking(Link)
        /// The session is established.
        case ready(Link)
        /// ``close()`` was called or the first connection failed.
        case closed
    }

    var phase: Phase = .idle
    var nextLinkID: UInt64 = 0
    var supervisor: Task<Void, Never>?
    var firstConnection: CheckedContinuation<Void, any Error>?
    var shutdownAnnounced = false
    var lastDisconnectReason = ""

    /// The last `connection_status_event` received.
    public private(set) var daemonStatus: DaemonStatus?
    /// The last PKI document pushed by the daemon (`nil` before one arrives or when the daemon
    /// has none).
    public private(set) var pkiDocument: PKIDocument?

    // MARK: Requests

    enum RequestKind {
        case local
        /// A mixnet-path `start_resending_*` request: replayed after a reconnect, cancelled on
        /// the wire when the calling task is cancelled.
        case resending(frame: [UInt8], sequence: UInt64, cancel: CancelTarget, lane: SubmissionLane, submittedAt: ContinuousClock.Instant)
    }

    enum CancelTarget {
        case envelope(hash: [UInt8])
        case copyCommand(writeCapHash: [UInt8])
    }

    /// Who receives a request's outcome: a suspended task, or a callback (a request with no
    /// task waiting for it, see ``startResendingEncryptedMessage(_:completion:)``).
    enum Receiver {
        case continuation(CheckedContinuation<ThinMessage, any Error>)
        case callback(@Sendable (Result<ThinMessage, ThinClientError>) -> Void)

        func resume(with result: Result<ThinMessage, ThinClientError>) {
            switch self {
            case .continuation(let continuation): continuation.resume(with: result.mapError { $0 as any Error })
            case .callback(let callback): callback(result)
            }
        }

        func resume(throwing error: ThinClientError) { resume(with: .failure(error)) }
    }

    struct PendingRequest {
        let replyKey: String
        let kind: RequestKind
        let continuation: Receiver
        var timer: RequestTimer?
        /// The deadline of a `start_resending_*` request, if it has one.
        var deadline: Duration? = nil
    }

    var pending: [[UInt8]: PendingRequest] = [:]
    var pendingLocalCount = 0
    var resendingSequence: UInt64 = 0
    /// Cancel frames sent for cancelled `start_resending_*` requests, by query ID, until their
    /// reply arrives; re-sent after a reconnect so the daemon forgets the request.
    var outstandingCancels: [[UInt8]: [UInt8]] = [:]
    static let maxOutstandingCancels = 1024

    var pacer: SubmissionPacer
    var pacerTimer: Task<Void, Never>?
    var nextWaiterID: UInt64 = 0
    var roundTrips = RoundTripEstimator()
    /// How `start_resending_*` requests ended against their deadlines.
    public private(set) var operationStatistics = OperationStatistics()

    struct SURBWaiter {
        let continuation: CheckedContinuation<MessageReply, any Error>
        var sent: MessageSentEvent?
        var holdsSlot: Bool
        var sequence: UInt64
        var timer: RequestTimer?
    }

    var surbWaiters: [[UInt8]: SURBWaiter] = [:]

    // MARK: Events

    var subscribers: [UInt64: AsyncStream<ThinClientEvent>.Continuation] = [:]
    var nextSubscriberID: UInt64 = 0

    init(configuration: ThinClientConfiguration, group: any EventLoopGroup) {
        self.configuration = configuration
        self.logger = configuration.logger
        self.group = group
        self.instanceToken = randomBytes(ThinSizes.instanceToken)
        self.pacer = SubmissionPacer(
            maxInFlight: configuration.maxOutstandingMixnetRequests, daemonQueueCapacity: configuration.daemonQueueCapacity,
            maxQueueDelay: configuration.maxDaemonQueueDelay, maxWaiters: configuration.maxWaitingMixnetRequests, ticksPerSecond: configuration.fallbackLambdaP * 1000,
            now: .now
        )
    }

    /// Connects to kpclientd, completes the handshake and returns the ready client.
    ///
    /// The handshake reads `connection_status_event` and `new_pki_document_event`, sends the
    /// client's `session_token` and waits for `session_token_reply`, dispatching any other frame
    /// that arrives meanwhile. Later disconnections are repaired in the background.
    ///
    /// - Throws: ``ThinClientError`` (`notConnected` if the socket cannot be opened,
    ///   `handshakeFailed` if the handshake fails or exceeds
    ///   ``ThinClientConfiguration/handshakeTimeout``, `invalidConfiguration`, `cancelled`).
    public static func connect(configuration: ThinClientConfiguration) async throws -> ThinClient {
        let client = ThinClient(configuration: try configuration.validated(), group: MultiThreadedEventLoopGroup.singleton)
        do {
            try await withTaskCancellationHandler {
                try await client.start()
            } onCancel: {
                Task { await client.close() }
            }
        } catch {
            if Task.isCancelled { throw ThinClientError(.cancelled, "connecting to kpclientd was cancelled") }
            throw error
        }
        return client
    }

    private func start() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            firstConnection = continuation
            supervisor = Task { await self.superviseConnections() }
        }
    }

    /// Whether the daemon reports a link to the mixnet and the local session is up.
    ///
    /// Like the Python client's `is_connected()`, this is `false` while the local socket is down.
    public var isConnected: Bool {
        guard case .ready = phase else { return false }
        return daemonStatus?.isConnected ?? false
    }

    /// Whether the local session with kpclientd is established (handshake complete).
    public var isSessionEstablished: Bool {
        if case .ready = phase { return true }
        return false
    }

    /// The Pigeonhole geometry from the last `connection_status_event`, if any.
    public var pigeonholeGeometry: PigeonholeGeometry? { daemonStatus?.pigeonholeGeometry }

    /// The Sphinx geometry from the last `connection_status_event`, if any.
    public var sphinxGeometry: SphinxGeometry? { daemonStatus?.sphinxGeometry }

    /// The number of mixnet-path requests submitted (or admitted) and not yet answered.
    public var outstandingMixnetRequests: Int { pacer.inFlight }

    /// The number of mixnet-path requests waiting for admission.
    public var waitingMixnetRequests: Int { pacer.waiterCount }

    /// The number of mixnet-path requests the client believes queued at kpclientd and not yet sent.
    public var unsentMixnetRequests: Int {
        pacer.drain(now: .now)
        return pacer.unsentCount
    }

    /// The send rate the client paces to: λP in ticks per second.
    public var sendTicksPerSecond: Double { pacer.ticksPerSecond }

    /// The smoothed time from submission to reply of completed requests, if any completed.
    public var smoothedRoundTrip: Duration? { roundTrips.smoothedDuration }

    /// The deadline an automatic `start_resending_encrypted_message` gets now (`nil`: none).
    public var currentOperationDeadline: Duration? {
        configuration.operationDeadline?.deadline(smoothedRoundTrip: roundTrips.smoothedDuration)
    }

    /// A new subscription to the client's events.
    ///
    /// Each subscriber buffers up to ``ThinClientConfiguration/eventBufferSize`` events and
    /// drops the oldest beyond that. The sequence ends when the client closes.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/tooManyPendingRequests`` beyond
    ///   ``ThinClientConfiguration/maxEventSubscribers`` subscribers.
    public func events() throws -> AsyncStream<ThinClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(
            of: ThinClientEvent.self, bufferingPolicy: .bufferingNewest(configuration.eventBufferSize)
        )
        if case .closed = phase {
            continuation.finish()
            return stream
        }
        guard subscribers.count < configuration.maxEventSubscribers else {
            throw ThinClientError(.tooManyPendingRequests, "too many event subscribers (at most \(configuration.maxEventSubscribers))")
        }
        let id = nextSubscriberID
        nextSubscriberID += 1
        subscribers[id] = continuation
        continuation.onTermination = { [weak self] _ in
            guard let self else { return }
            Task { await self.removeSubscriber(id) }
        }
        return stream
    }

    private func removeSubscriber(_ id: UInt64) {
        subscribers[id] = nil
    }

    func publish(_ event: ThinClientEvent) {
        for continuation in subscribers.values {
            continuation.yield(event)
        }
    }

    /// Closes the client: sends `thin_close` (the daemon then drops the session's state), closes
    /// the socket, stops reconnecting and fails everything pending with
    /// ``ThinClientError/Code-swift.struct/closed``.
    public func close() async {
        let link: Link?
        switch phase {
        case .closed: return
        case .idle: link = nil
        case .handshaking(let l), .ready(let l): link = l
        }
        phase = .closed
        supervisor?.cancel()
        pacerTimer?.cancel()
        link?.handshakeTimer?.cancel()
        let closedError = ThinClientError(.closed, "the thin client was closed")
        failEverything(closedError)
        if let firstConnection {
            self.firstConnection = nil
            firstConnection.resume(throwing: closedError)
        }
        if let link {
            let frame = (try? encodeFrame(ThinMessage(ThinKey.Request.thinClose, body: .map([])))) ?? []
            let buffer = link.channel.allocator.buffer(bytes: frame)
            try? await link.channel.writeAndFlush(buffer)
            try? await link.channel.close()
        }
        for continuation in subscribers.values {
            continuation.finish()
        }
        subscribers = [:]
        logger.debug("thin client closed")
    }

    /// Fails every pending request, SURB waiter and pacer waiter with `error`.
    private func failEverything(_ error: ThinClientError) {
        let requests = pending
        pending = [:]
        pendingLocalCount = 0
        for entry in requests.values {
            entry.timer?.cancel()
            if case .resending = entry.kind { pacer.finished(answeredSequence: nil) }
            entry.continuation.resume(throwing: error)
        }
        let waiters = surbWaiters
        surbWaiters = [:]
        for waiter in waiters.values {
            waiter.timer?.cancel()
            if waiter.holdsSlot { pacer.finished(answeredSequence: nil) }
            waiter.continuation.resume(throwing: error)
        }
        for waiter in pacer.removeAllWaiters() {
            waiter.resume(throwing: error)
        }
        outstandingCancels = [:]
    }

    // MARK: - Connection supervision

    /// Connects, reads frames, and reconnects with backoff until the client closes.
    private nonisolated func superviseConnections() async {
        var backoff = Backoff(policy: configuration.reconnect)
        while true {
            guard await shouldAttemptConnection() else { return }
            var linkID: UInt64?
            var failure: (any Error)?
            do {
                let channel = try await Dialer.connect(to: configuration.dial, group: group)
                try await channel.executeThenClose { inbound, _ in
                    let id = try await self.attach(channel.channel)
                    linkID = id
                    var decoder = ThinFrameDecoder()
                    for try await buffer in inbound {
                        decoder.append(buffer.readableBytesView)
                        while let value = try decoder.nextValue() {
                            let message = try ThinMessage(decoding: value)
                            try await self.receive(message, linkID: id)
                        }
                    }
                }
            } catch {
                failure = error
            }
            let outcome = await detach(linkID: linkID, failure: failure)
            switch outcome {
            case .stop:
                return
            case .reconnect(let wasReady):
                if wasReady { backoff.reset() }
                let delay = backoff.nextDelay()
                logger.info("reconnecting to kpclientd", metadata: ["delay": "\(delay)", "attempt": "\(backoff.attempt)"])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return
                }
            }
        }
    }

    private func shouldAttemptConnection() -> Bool {
        if case .closed = phase { return false }
        return true
    }

    /// Registers a freshly opened socket and starts its handshake timer.
    private func attach(_ channel: any Channel) throws -> UInt64 {
        guard case .idle = phase else {
            channel.close(promise: nil)
            throw ThinClientError(.closed, "the thin client was closed")
        }
        nextLinkID += 1
        let id = nextLinkID
        var link = Link(id: id, channel: channel)
        let timeout = configuration.handshakeTimeout
        link.handshakeTimer = Task { [weak self] in
            do {
                try await Task.sleep(for: timeout)
            } catch {
                return
            }
            await self?.handshakeTimedOut(linkID: id)
        }
        phase = .handshaking(link)
        shutdownAnnounced = false
        logger.debug("connected to kpclientd; handshaking", metadata: ["address": "\(configuration.dial)"])
        return id
    }

    private func handshakeTimedOut(linkID: UInt64) {
        guard case .handshaking(let link) = phase, link.id == linkID else { return }
        lastDisconnectReason = "handshake timed out after \(configuration.handshakeTimeout)"
        logger.warning("kpclientd handshake timed out; closing the connection")
        link.channel.close(promise: nil)
    }

    enum DetachOutcome {
        case stop
        case reconnect(wasReady: Bool)
    }

    /// Cleans up after a connection ended (or failed to open).
    private func detach(linkID: UInt64?, failure: (any Error)?) -> DetachOutcome {
        var wasReady = false
        var hadLink = false
        switch phase {
        case .closed:
            return .stop
        case .idle:
            break
        case .handshaking(let link):
            hadLink = link.id == linkID
            link.handshakeTimer?.cancel()
        case .ready(let link):
            hadLink = link.id == linkID
            wasReady = hadLink
            link.handshakeTimer?.cancel()
        }
        phase = .idle
        let reason = describe(failure)
        if hadLink {
            let graceful = shutdownAnnounced
            logger.warning(
                "lost the connection to kpclientd",
                metadata: ["graceful": "\(graceful)", "reason": "\(reason)"]
            )
            failLocalRequests(ThinClientError(.connectionLost, "the connection to kpclientd was lost (\(reason))"))
            for (surbID, var waiter) in surbWaiters where waiter.holdsSlot {
                // The new connection's daemon queue is empty; the reply may still come through the resumed session.
                waiter.holdsSlot = false
                surbWaiters[surbID] = waiter
                pacer.finished(answeredSequence: nil)
            }
            admitWaiters()
            publish(.disconnected(graceful: graceful))
        } else {
            logger.debug("could not connect to kpclientd", metadata: ["reason": "\(reason)"])
        }
        shutdownAnnounced = false
        if let firstConnection {
            self.firstConnection = nil
            let code: ThinClientError.Code = hadLink ? .handshakeFailed : .notConnected
            let error = ThinClientError(code, "cannot connect to kpclientd at \(configuration.dial): \(reason)")
            phase = .closed
            failEverything(error)
            firstConnection.resume(throwing: error)
            return .stop
        }
        return .reconnect(wasReady: wasReady)
    }

    private func describe(_ failure: (any Error)?) -> String {
        if !lastDisconnectReason.isEmpty {
            defer { lastDisconnectReason = "" }
            return lastDisconnectReason
        }
        guard let failure else { return "the daemon closed the connection" }
        if let error = failure as? ThinWireError { return error.description }
        if let error = failure as? ThinClientError { return error.description }
        return String(describing: failure)
    }

    private func failLocalRequests(_ error: ThinClientError) {
        for (queryID, entry) in pending {
            guard case .local = entry.kind else { continue }
            pending[queryID] = nil
            pendingLocalCount -= 1
            entry.timer?.cancel()
            entry.continuation.resume(throwing: error)
        }
    }

    // MARK: - Receiving

    /// Handles one message from the daemon; throwing closes the connection.
    private func receive(_ message: ThinMessage, linkID: UInt64) throws {
        let handshaking: Bool
        switch phase {
        case .handshaking(let link) where link.id == linkID: handshaking = true
        case .ready(let link) where link.id == linkID: handshaking = false
        default: return
        }
        var advancesHandshake = false
        switch message.key {
        case ThinKey.Event.connectionStatus:
            let status: DaemonStatus
            do {
                status = try DaemonStatus(message: message.fields)
            } catch {
                throw ThinClientError(.protocolViolation, "invalid connection_status_event: \(error.message)")
            }
            daemonStatus = status
            publish(.connectionStatus(status))
            if handshaking {
                updateLink { $0.statusSeen = true }
                advancesHandshake = true
            }
        case ThinKey.Event.newPKIDocument:
            let payload: [UInt8]?
            do {
                payload = try message.fields.optionalBytes(ThinKey.Field.payload)
            } catch {
                throw ThinClientError(.protocolViolation, "invalid new_pki_document_event: \(error.message)")
            }
            let document = payload.flatMap { $0.isEmpty ? nil : PKIDocument(payload: $0) }
            pkiDocument = document
            updateSendRate(document)
            publish(.newPKIDocument(document))
            if handshaking {
                updateLink { $0.documentSeen = true }
                advancesHandshake = true
            }
        case ThinKey.Event.sessionTokenReply:
            if handshaking, case .handshaking(let link) = phase, link.tokenSent {
                let resumed = (try? message.fields.optionalBool(ThinKey.Field.resumed)) ?? nil
                completeHandshake(resumed: resumed ?? false)
                return
            }
            logger.debug("ignoring an unexpected session_token_reply")
        case ThinKey.Event.messageSent:
            handleMessageSent(message)
        case ThinKey.Event.messageReply:
            handleMessageReply(message)
        case ThinKey.Event.messageIDGarbageCollected:
            if let id = try? message.fields.bytes(ThinKey.Field.messageID, length: ThinSizes.messageID) {
                publish(.messageIDGarbageCollected(messageID: id))
            }
        case ThinKey.Event.shutdown:
            shutdownAnnounced = true
            logger.info("kpclientd announced its shutdown")
            publish(.shutdown)
        default:
            if message.key.hasSuffix("_reply") {
                routeReply(message)
            } else {
                logger.debug("ignoring an unknown message", metadata: ["key": "\(message.key)"])
                publish(.unknown(key: message.key))
            }
        }
        guard handshaking, case .handshaking(var link) = phase else { return }
        if advancesHandshake {
            if link.statusSeen && link.documentSeen && !link.tokenSent {
                let frame = try encodeFrame(
                    ThinMessage(ThinKey.Request.sessionToken, [(ThinKey.Field.clientInstanceToken, .bytes(instanceToken))])
                )
                link.tokenSent = true
                phase = .handshaking(link)
                write(frame, on: link)
            }
        } else {
            link.otherFrames += 1
            phase = .handshaking(link)
            guard link.otherFrames <= configuration.handshakeFrameLimit else {
                throw ThinClientError(
                    .handshakeFailed, "more than \(configuration.handshakeFrameLimit) unrelated frames during the handshake"
                )
            }
        }
    }

    private func updateLink(_ body: (inout Link) -> Void) {
        guard case .handshaking(var link) = phase else { return }
        body(&link)
        phase = .handshaking(link)
    }

    private func completeHandshake(resumed: Bool) {
        guard case .handshaking(var link) = phase else { return }
        link.handshakeTimer?.cancel()
        link.handshakeTimer = nil
        phase = .ready(link)
        logger.info("kpclientd session established", metadata: ["resumed": "\(resumed)"])
        if let firstConnection {
            self.firstConnection = nil
            firstConnection.resume()
        }
        // Replay in-flight start_resending_* requests byte for byte, in submission order. They
        // fill the new connection's queue at the daemon, so new submissions wait behind them.
        let replays = pending.values.compactMap { entry -> (UInt64, [UInt8])? in
            if case .resending(let frame, let sequence, _, _, _) = entry.kind { return (sequence, frame) }
            return nil
        }.sorted { $0.0 < $1.0 }
        pacer.resetDaemonQueue(now: .now)
        pacer.resubmitted(sequences: replays.map(\.0))
        for (_, frame) in replays {
            write(frame, on: link)
        }
        admitWaiters()
        for frame in outstandingCancels.values {
            write(frame, on: link)
        }
        if !replays.isEmpty || !outstandingCancels.isEmpty {
            logger.debug("replayed in-flight requests", metadata: ["resending": "\(replays.count)", "cancels": "\(outstandingCancels.count)"])
        }
        publish(.connected(resumed: resumed))
    }

    private func routeReply(_ message: ThinMessage) {
        guard let queryID = try? message.fields.queryID() else {
            logger.debug("dropping a reply without a valid query_id", metadata: ["key": "\(message.key)"])
            return
        }
        if outstandingCancels.removeValue(forKey: queryID) != nil {
            return
        }
        guard let entry = pending.removeValue(forKey: queryID) else {
            // Late replies (after a timeout or cancellation) and EC 24 notices of cancelled requests.
            logger.trace("dropping a reply nobody waits for", metadata: ["key": "\(message.key)"])
            return
        }
        if entry.replyKey == message.key {
            if case .resending(_, _, _, let lane, let submittedAt) = entry.kind, lane != .wait,
                (try? message.fields.errorCode()) != ThinClientErrorCode.startResendingCancelled.rawValue
            {
                roundTrips.add(.now - submittedAt)
            }
            finish(entry, .success(message), answered: true)
        } else {
            finish(entry, .failure(ThinClientError(.protocolViolation, "expected \(entry.replyKey), got \(message.key)")))
        }
    }

    /// Completes a request that was already removed from ``pending``.
    ///
    /// - Parameter answered: whether the daemon answered it (proof that it was sent).
    private func finish(
        _ entry: PendingRequest, _ result: Result<ThinMessage, ThinClientError>, answered: Bool = false, timedOut: Bool = false
    ) {
        entry.timer?.cancel()
        switch entry.kind {
        case .local:
            pendingLocalCount -= 1
        case .resending(_, let sequence, _, _, let submittedAt):
            operationStatistics.record(elapsed: .now - submittedAt, deadline: entry.deadline, answered: answered, timedOut: timedOut)
            pacer.finished(answeredSequence: answered ? sequence : nil)
            admitWaiters()
        }
        entry.continuation.resume(with: result)
    }

    // MARK: - Sending

    func write(_ frame: [UInt8], on link: Link) {
        let buffer = link.channel.allocator.buffer(bytes: frame)
        link.channel.writeAndFlush(buffer, promise: nil)
    }

    /// Encodes a message as a frame, refusing frames above the 40 MiB cap.
    func encodeFrame(_ message: ThinMessage) throws(ThinClientError) -> [UInt8] {
        try Self.encodeFrame(message)
    }

    /// Encodes a message as a frame, refusing frames above the 40 MiB cap.
    static func encodeFrame(_ message: ThinMessage) throws(ThinClientError) -> [UInt8] {
        let value = message.value
        let length = value.encodedLength
        guard length <= ThinFrame.maximumLength else {
            throw ThinClientError(
                .frameTooLarge, "\(message.key) request of \(length) bytes exceeds the \(ThinFrame.maximumLength)-byte frame limit"
            )
        }
        do {
            return try ThinFrame.frame(body: value.encoded())
        } catch {
            throw ThinClientError(.frameTooLarge, "\(message.key) request exceeds the 40 MiB frame limit")
        }
    }

    /// The link to send on, or the reason there is none.
    func readyLink() throws(ThinClientError) -> Link {
        switch phase {
        case .ready(let link): return link
        case .closed: throw ThinClientError(.closed, "the thin client was closed")
        case .idle, .handshaking: throw ThinClientError(.notConnected, "not connected to kpclientd (reconnecting)")
        }
    }

    /// Sends a local request and waits for its reply.
    func performLocal(_ key: String, _ fields: [(String, CBORValue)]) async throws -> ThinFields {
        guard !Task.isCancelled else { throw ThinClientError(.cancelled, "\(key) was cancelled") }
        let link = try readyLink()
        guard pendingLocalCount < configuration.maxPendingLocalRequests else {
            throw ThinClientError(
                .tooManyPendingRequests, "too many local requests in flight (at most \(configuration.maxPendingLocalRequests))"
            )
        }
        let queryID = randomBytes(ThinSizes.queryID)
        let frame = try encodeFrame(ThinMessage(key, [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ThinMessage, any Error>) in
                var entry = PendingRequest(replyKey: ThinKey.Reply.of(key), kind: .local, continuation: .continuation(continuation))
                if let timeout = configuration.localRequestTimeout {
                    entry.timer = RequestTimer(after: timeout, on: link.channel.eventLoop) { [weak self] in
                        Task { await self?.expire(queryID: queryID, after: timeout) }
                    }
                }
                pending[queryID] = entry
                pendingLocalCount += 1
                write(frame, on: link)
            }
        } onCancel: {
            Task { await self.cancelRequest(queryID: queryID) }
        }
        return reply.fields
    }

    private func expire(queryID: [UInt8], after timeout: Duration) {
        guard let entry = pending.removeValue(forKey: queryID) else { return }
        finish(entry, .failure(ThinClientError(.timeout, "no reply to \(entry.replyKey.dropLast(6)) within \(timeout)")))
    }

    /// Sends a mixnet-path `start_resending_*` request, already encoded, and waits for its
    /// terminal reply.
    ///
    /// The request waits for admission by the pacer in `lane`; it is replayed byte for byte
    /// after a reconnect, and cancelled on the wire if the calling task is cancelled or
    /// `deadline` passes (counted from submission), which fails it with
    /// ``ThinClientError/Code-swift.struct/timeout``. Only the encoded frame is kept while it
    /// waits: the caller encodes in a synchronous step, so no field tree outlives it.
    func performResending(
        _ request: EncodedRequest, cancel: CancelTarget, lane: SubmissionLane, deadline: Duration?
    ) async throws -> ThinFields {
        let key = request.key
        guard !Task.isCancelled else { throw ThinClientError(.cancelled, "\(key) was cancelled") }
        _ = try readyLink()
        try await admit(lane: lane)
        let link: Link
        do {
            link = try readyLink()
        } catch {
            pacer.abandonedBeforeSubmission()
            admitWaiters()
            throw error
        }
        let queryID = request.queryID
        let reply = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<ThinMessage, any Error>) in
                send(request, cancel: cancel, lane: lane, deadline: deadline, to: .continuation(continuation), on: link)
            }
        } onCancel: {
            Task { await self.cancelRequest(queryID: queryID) }
        }
        return reply.fields
    }

    /// Submits a mixnet-path `start_resending_*` request, already encoded, whose terminal reply
    /// goes to `completion`: the callback form of ``performResending(_:cancel:lane:deadline:)``.
    ///
    /// The calling task waits for admission by the pacer and returns once the request is sent;
    /// no task waits for the reply. Cancelling the calling task before then, or
    /// ``cancelRequest(queryID:)`` afterwards, completes it with
    /// ``ThinClientError/Code-swift.struct/cancelled``. `completion` is called exactly once.
    func submitResending(
        _ request: EncodedRequest, cancel: CancelTarget, lane: SubmissionLane, deadline: Duration?,
        completion: @escaping @Sendable (Result<ThinMessage, ThinClientError>) -> Void
    ) async {
        let key = request.key
        do {
            guard !Task.isCancelled else { throw ThinClientError(.cancelled, "\(key) was cancelled") }
            _ = try readyLink()
            try await admit(lane: lane)
        } catch {
            completion(.failure(Self.classify(error)))
            return
        }
        let link: Link
        do {
            guard !Task.isCancelled else { throw ThinClientError(.cancelled, "\(key) was cancelled") }
            link = try readyLink()
        } catch {
            pacer.abandonedBeforeSubmission()
            admitWaiters()
            completion(.failure(Self.classify(error)))
            return
        }
        send(request, cancel: cancel, lane: lane, deadline: deadline, to: .callback(completion), on: link)
    }

    /// Submits an admitted `start_resending_*` request: counts it with the pacer, keeps it
    /// pending (with its deadline's timer) until `receiver` gets its terminal reply, and writes
    /// its frame.
    private func send(
        _ request: EncodedRequest, cancel: CancelTarget, lane: SubmissionLane, deadline: Duration?,
        to receiver: Receiver, on link: Link
    ) {
        let queryID = request.queryID
        resendingSequence += 1
        let sequence = resendingSequence
        pacer.submitted(sequence: sequence)
        var entry = PendingRequest(
            replyKey: ThinKey.Reply.of(request.key),
            kind: .resending(frame: request.frame, sequence: sequence, cancel: cancel, lane: lane, submittedAt: .now),
            continuation: receiver
        )
        entry.deadline = deadline
        if let deadline {
            entry.timer = RequestTimer(after: deadline, on: link.channel.eventLoop) { [weak self] in
                Task { await self?.deadlinePassed(queryID: queryID, after: deadline) }
            }
        }
        pending[queryID] = entry
        write(request.frame, on: link)
    }

    /// Calls `expire` once `delay` has passed, on one of the client's event loops, unless the
    /// returned timer is cancelled first.
    ///
    /// For pauses that are often cut short: a cancelled timer's memory goes at once, where a
    /// sleeping `Task` keeps about 2 KiB until its original deadline.
    public nonisolated func timer(after delay: Duration, _ expire: @escaping @Sendable () -> Void) -> RequestTimer {
        RequestTimer(after: delay, on: group.next(), expire)
    }

    /// Any error of a request as a ``ThinClientError`` (cancellation as `cancelled`).
    static func classify(_ error: any Error) -> ThinClientError {
        if let error = error as? ThinClientError { return error }
        if error is CancellationError { return ThinClientError(.cancelled, "the request was cancelled") }
        return ThinClientError(.internalError, String(describing: error))
    }

    /// The deadline of a request with `setting`, under the current round-trip estimate.
    func resolve(_ setting: OperationDeadline) -> Duration? {
        switch setting {
        case .none: return nil
        case .after(let duration): return max(duration, .zero)
        case .automatic: return currentOperationDeadline
        }
    }

    /// Gives up on a request whose deadline passed: cancels it at the daemon and fails it.
    private func deadlinePassed(queryID: [UInt8], after deadline: Duration) {
        guard let entry = pending.removeValue(forKey: queryID) else { return }
        if case .resending(_, _, let target, _, _) = entry.kind {
            sendCancel(for: target)
        }
        logger.debug("a mixnet request passed its deadline; cancelled", metadata: ["deadline": "\(deadline)"])
        finish(
            entry,
            .failure(ThinClientError(.timeout, "\(entry.replyKey.dropLast(6)) got no reply within its deadline of \(deadline); cancelled")),
            timedOut: true
        )
    }

    /// Abandons a request whose task was cancelled; a `start_resending_*` is also cancelled at the daemon.
    func cancelRequest(queryID: [UInt8]) {
        guard let entry = pending.removeValue(forKey: queryID) else { return }
        if case .resending(_, _, let target, _, _) = entry.kind {
            sendCancel(for: target)
        }
        finish(entry, .failure(ThinClientError(.cancelled, "\(entry.replyKey.dropLast(6)) was cancelled")))
    }

    /// Tells the daemon to stop resending; re-sent after a reconnect until answered.
    private func sendCancel(for target: CancelTarget) {
        let cancelQueryID = randomBytes(ThinSizes.queryID)
        let message: ThinMessage
        switch target {
        case .envelope(let hash):
            message = ThinMessage(
                ThinKey.Request.cancelResendingEncryptedMessage,
                [(ThinKey.Field.queryID, .bytes(cancelQueryID)), (ThinKey.Field.envelopeHash, .bytes(hash))]
            )
        case .copyCommand(let writeCapHash):
            message = ThinMessage(
                ThinKey.Request.cancelResendingCopyCommand,
                [(ThinKey.Field.queryID, .bytes(cancelQueryID)), (ThinKey.Field.writeCapHash, .bytes(writeCapHash))]
            )
        }
        guard let frame = try? encodeFrame(message) else { return }
        if outstandingCancels.count < Self.maxOutstandingCancels {
            outstandingCancels[cancelQueryID] = frame
        } else {
            logger.warning("too many unanswered cancellations; this one is not re-sent after a reconnect")
        }
        if case .ready(let link) = phase {
            write(frame, on: link)
        }
    }

    /// Waits (in lane order, FIFO within a lane, bounded) for admission by the pacer.
    func admit(lane: SubmissionLane) async throws {
        pacer.drain(now: .now)
        if pacer.tryAdmit(lane: lane) { return }
        let waiterID = nextWaiterID
        nextWaiterID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if pacer.enqueue(id: waiterID, lane: lane, continuation) {
                    schedulePacerTimer()
                } else {
                    continuation.resume(
                        throwing: ThinClientError(
                            .tooManyPendingRequests,
                            "too many mixnet requests waiting (at most \(configuration.maxWaitingMixnetRequests))"
                        )
                    )
                }
            }
        } onCancel: {
            Task { await self.cancelSlotWaiter(waiterID) }
        }
        // Admitted now; give the place back if the task was cancelled meanwhile.
        if Task.isCancelled {
            pacer.abandonedBeforeSubmission()
            admitWaiters()
            throw ThinClientError(.cancelled, "cancelled while waiting to submit a mixnet request")
        }
    }

    private func cancelSlotWaiter(_ id: UInt64) {
        pacer.removeWaiter(id: id)?.resume(
            throwing: ThinClientError(.cancelled, "cancelled while waiting to submit a mixnet request")
        )
    }

    /// Admits every waiter there is room for, and arms the pacer's timer if some still wait
    /// for a tick of the daemon.
    func admitWaiters() {
        for waiter in pacer.admitWaiters(now: .now) {
            waiter.resume()
        }
        schedulePacerTimer()
    }

    private func schedulePacerTimer() {
        guard pacerTimer == nil, let delay = pacer.timeUntilNextDrain() else { return }
        pacerTimer = Task { [weak self] in
            try? await Task.sleep(for: delay)
            await self?.pacerTimerFired()
        }
    }

    private func pacerTimerFired() {
        pacerTimer = nil
        if case .closed = phase { return }
        admitWaiters()
    }

    /// Paces to the PKI document's `LambdaP` (ticks per millisecond), or the configured fallback.
    private func updateSendRate(_ document: PKIDocument?) {
        var lambdaP = configuration.fallbackLambdaP
        if let value = document?.document?["LambdaP"]?.double, value.isFinite, value > 0 {
            lambdaP = value
        }
        pacer.setRate(ticksPerSecond: lambdaP * 1000, now: .now)
        admitWaiters()
    }
}

/// Random bytes from libsodium's CSPRNG (query IDs, SURB IDs, the instance token).
func randomBytes(_ count: Int) -> [UInt8] {
    SecureRandom.bytes(count)
}

/// A mixnet-path request encoded with a fresh query ID: the frame to send, and to replay byte
/// for byte after a reconnect.
struct EncodedRequest: Sendable {
    /// The request's message key, such as `start_resending_encrypted_message`.
    let key: String
    /// The request's random 16-byte query ID.
    let queryID: [UInt8]
    /// The complete frame.
    let frame: [UInt8]

    /// Encodes a request of `key` with `fields` and a fresh query ID.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/frameTooLarge`` above the 40 MiB cap.
    init(_ key: String, _ fields: [(String, CBORValue)]) throws(ThinClientError) {
        let queryID = randomBytes(ThinSizes.queryID)
        frame = try ThinClient.encodeFrame(ThinMessage(key, [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
        self.key = key
        self.queryID = queryID
    }
}
