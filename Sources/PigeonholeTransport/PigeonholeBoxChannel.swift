import Logging
import StreamEngine
import ThinClient

/// One Pigeonhole stream as a StreamEngine ``BoxChannel``.
///
/// Box *i* (0-based) is the stream's BACAP index advanced *i* times from its first index. The
/// channel caches those indexes (see ``indexSnapshot()``), so that a box number is reached from
/// the closest cached index below it rather than from the first one.
///
/// - Writes: `encrypt_write`, then `start_resending_encrypted_message` with
///   `no_idempotent_box_already_exists`, so the replica's own result comes back: a box already
///   holding other bytes fails with ``BoxTransportError/Code-swift.struct/alreadyExists``, while
///   rewriting identical bytes succeeds.
/// - Reads: `encrypt_read`, then `start_resending_encrypted_message`. ``BoxReadMode/poll`` sets
///   `no_retry_on_box_id_not_found` and returns `nil` for an empty box. ``BoxReadMode/wait``
///   never camps on one envelope (the courier would keep answering a stale BoxIDNotFound from
///   its cache): it follows ``PigeonholeTransportConfiguration/waitingReads``, by default polls
///   with a fresh `encrypt_read` each at growing intervals, and only boxes within
///   ``PollSchedule/ahead`` of the channel's frontier (reads further ahead wait without
///   spending send ticks until a box found written moves it). Cancelling the calling task cancels
///   the daemon's retransmissions (by envelope hash).
/// - Every request has the thin client's deadline (a few measured round trips). When it passes
///   the request is cancelled at the daemon and the call throws
///   ``BoxTransportError/Code-swift.struct/timeout``; the caller re-issues it, which encrypts a
///   fresh envelope (it may take another courier). A re-encrypted write of the same bytes is
///   idempotent: BACAP encryption is deterministic, so the replica sees the same box and
///   signature and answers success, not BoxAlreadyExists.
public actor PigeonholeBoxChannel: BoxChannel {
    /// The exact number of bytes every box holds (`MaxPlaintextPayloadLength`).
    public nonisolated let payloadSize: Int
    /// Whether the channel was opened with a writer seed.
    public nonisolated let canWrite: Bool

    let client: ThinClient
    private let writeCapability: WriteCapability?
    let readCapability: ReadCapability
    let configuration: PigeonholeTransportConfiguration
    private var indexes: BoxIndexCache
    /// The polling frontier of waiting reads; see ``PollSchedule/ahead``.
    private var frontier = PollFrontier()
    /// Waiting reads held back by the frontier, by ticket.
    private var heldReads: [UInt64: (number: UInt64, continuation: CheckedContinuation<Void, Never>)] = [:]
    private var nextTicket: UInt64 = 0
    /// `next_message_box_index` requests in flight, by the box number whose index each finds:
    /// concurrent lookups await the same step instead of asking again.
    private var steps: [UInt64: Task<MessageBoxIndex, any Error>] = [:]
    /// Waiting reads pausing between polls, by ticket; resumed with `true` when woken early.
    private var pausedReads: [UInt64: (number: UInt64, continuation: CheckedContinuation<Bool, Never>)] = [:]

    init(
        client: ThinClient, payloadSize: Int, writeCapability: WriteCapability?, readCapability: ReadCapability,
        firstIndex: MessageBoxIndex, configuration: PigeonholeTransportConfiguration
    ) {
        self.client = client
        self.payloadSize = payloadSize
        self.canWrite = writeCapability != nil
        self.writeCapability = writeCapability
        self.readCapability = readCapability
        self.configuration = configuration
        self.indexes = BoxIndexCache(
            first: firstIndex, interval: configuration.indexAnchorInterval, maxAnchors: configuration.maxIndexAnchors,
            maxRecent: configuration.maxRecentIndexes
        )
    }

    /// The channel's read locator: its 136-byte read capability (secret).
    public nonisolated var readLocator: [UInt8] { readCapability.bytes }

    /// Starts ``write(index:bytes:)`` in a task: a Pigeonhole write is round trips through
    /// kpclientd, so the callback form wraps this channel's async code
    /// (``BoxOperation/task(_:completion:)``); cancelling it cancels the task.
    public nonisolated func startWrite(
        index: UInt64, bytes: [UInt8], completion: @escaping @Sendable (Result<Void, BoxTransportError>) -> Void
    ) -> BoxOperation {
        .task({ try await self.write(index: index, bytes: bytes) }, completion: completion)
    }

    /// Starts ``read(index:mode:)``; see ``startWrite(index:bytes:completion:)``.
    ///
    /// A ``BoxReadMode/wait`` read under ``WaitingReadStrategy/reissue(every:)`` (kpclientd
    /// retries it until the box is written) is a ``ReissuedRead``: no task waits while the
    /// daemon does, only the thin client's pending request. Every other read runs in a task.
    public nonisolated func startRead(
        index: UInt64, mode: BoxReadMode, completion: @escaping @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void
    ) -> BoxOperation {
        if mode == .wait, case .reissue(let every) = configuration.waitingReads {
            let read = ReissuedRead(channel: self, number: index, every: every, completion: completion)
            read.start()
            return BoxOperation { read.cancel() }
        }
        return .task({ try await self.read(index: index, mode: mode) }, completion: completion)
    }

    public func write(index: UInt64, bytes: [UInt8]) async throws {
        guard let writeCapability else {
            throw BoxTransportError(.permissionDenied, "this channel was opened with a read locator and cannot write")
        }
        guard bytes.count == payloadSize else {
            throw BoxTransportError(.invalidPayloadSize, "a box holds exactly \(payloadSize) bytes, got \(bytes.count)")
        }
        let boxIndex = try await messageBoxIndex(of: index)
        let message: EncryptedMessage
        do {
            message = try await client.encryptWrite(plaintext: bytes, writeCapability: writeCapability, index: boxIndex)
        } catch {
            throw boxTransportError(error, operation: "encrypt_write of box \(index)")
        }
        remember(index &+ 1, message.nextMessageBoxIndex)
        do {
            _ = try await client.startResendingEncryptedMessage(
                .write(message, writeCapability: writeCapability, noIdempotentBoxAlreadyExists: true)
            )
        } catch {
            throw boxTransportError(error, operation: "write of box \(index)")
        }
    }

    public func read(index: UInt64, mode: BoxReadMode) async throws -> [UInt8]? {
        let boxIndex = try await messageBoxIndex(of: index)
        switch mode {
        case .poll:
            let bytes = try await readOnce(index, boxIndex, mode: .poll)
            if bytes != nil, case .poll(let schedule) = configuration.waitingReads {
                frontier.found(index)
                releaseHeldReads(ahead: schedule.ahead)
                wakeSuccessor(of: index)
            }
            return bytes
        case .wait:
            return try await waitForBox(index, boxIndex)
        }
    }

    /// How one `start_resending_encrypted_message` of a read is made.
    private enum ReadAttempt {
        /// `no_retry_on_box_id_not_found`: `nil` for an empty box.
        case poll
        /// The daemon retries until the box is written, for at most `limit` (`nil`: the
        /// client's deadline); `nil` comes back when the limit passes.
        case daemonRetry(limit: Duration?)
    }

    /// Waits for box `number` without camping on one envelope.
    private func waitForBox(_ number: UInt64, _ boxIndex: MessageBoxIndex) async throws -> [UInt8] {
        switch configuration.waitingReads {
        case .poll(let schedule):
            frontier.startWaiting(number)
            defer {
                frontier.stopWaiting(number)
                releaseHeldReads(ahead: schedule.ahead)
            }
            var emptyAnswers = 0
            while true {
                try await holdUntilPollable(number, ahead: schedule.ahead)
                if let bytes = try await readOnce(number, boxIndex, mode: .poll) {
                    frontier.found(number)
                    releaseHeldReads(ahead: schedule.ahead)
                    wakeSuccessor(of: number)
                    return bytes
                }
                emptyAnswers += 1
                let roundTrip = await client.smoothedRoundTrip ?? schedule.shortest
                if try await pause(schedule.pause(after: emptyAnswers, roundTrip: roundTrip), number) {
                    // The box before this one was just found: the writer is here, start over.
                    emptyAnswers = 0
                }
            }
        case .reissue(let every):
            while true {
                if let bytes = try await readOnce(number, boxIndex, mode: .daemonRetry(limit: every)) { return bytes }
            }
        }
    }

    /// Waits, without polling, until box `number` is within `ahead` boxes of the frontier.
    private func holdUntilPollable(_ number: UInt64, ahead: Int) async throws {
        while !frontier.mayPoll(number, ahead: ahead) {
            let ticket = nextTicket
            nextTicket &+= 1
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    if Task.isCancelled {
                        continuation.resume()
                    } else {
                        heldReads[ticket] = (number, continuation)
                    }
                }
            } onCancel: {
                Task { await self.releaseHeldRead(ticket) }
            }
            if Task.isCancelled { throw BoxTransportError(.cancelled, "read of box \(number) was cancelled") }
        }
    }

    /// Resumes the held reads the frontier now lets poll.
    private func releaseHeldReads(ahead: Int) {
        for (ticket, held) in heldReads where frontier.mayPoll(held.number, ahead: ahead) {
            heldReads[ticket] = nil
            held.continuation.resume()
        }
    }

    private func releaseHeldRead(_ ticket: UInt64) {
        heldReads.removeValue(forKey: ticket)?.continuation.resume()
    }

    /// Waiting reads held back by the frontier now (for tests).
    var heldReadCount: Int { heldReads.count }

    /// Pauses a waiting read of box `number` for `interval`, or until box `number − 1` is found
    /// written (a writer fills boxes in order, so this one is likely next).
    ///
    /// - Returns: whether the pause was cut short by that find.
    private func pause(_ interval: Duration, _ number: UInt64) async throws -> Bool {
        let ticket = nextTicket
        nextTicket &+= 1
        // An event-loop timer: most pauses are cut short, and a cancelled sleeping task would
        // keep its memory until the pause's end.
        let timer = client.timer(after: interval) { [weak self] in
            Task { await self?.endPause(ticket, early: false) }
        }
        defer { timer.cancel() }
        let early = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                if Task.isCancelled {
                    continuation.resume(returning: false)
                } else {
                    pausedReads[ticket] = (number, continuation)
                }
            }
        } onCancel: {
            Task { await self.endPause(ticket, early: false) }
        }
        if Task.isCancelled { throw BoxTransportError(.cancelled, "read of box \(number) was cancelled") }
        return early
    }

    private func endPause(_ ticket: UInt64, early: Bool) {
        pausedReads.removeValue(forKey: ticket)?.continuation.resume(returning: early)
    }

    /// Box `number` was found written: the paused read of the box after it polls now.
    private func wakeSuccessor(of number: UInt64) {
        guard number < .max else { return }
        for (ticket, paused) in pausedReads where paused.number == number + 1 {
            endPause(ticket, early: true)
        }
    }

    /// Waiting reads pausing between polls now (for tests).
    var pausedReadCount: Int { pausedReads.count }

    /// A fresh `encrypt_read` of box `number` at `boxIndex`, its successor's index remembered.
    func encryptRead(_ number: UInt64, _ boxIndex: MessageBoxIndex) async throws -> EncryptedMessage {
        let message: EncryptedMessage
        do {
            message = try await client.encryptRead(readCapability: readCapability, index: boxIndex)
        } catch {
            throw boxTransportError(error, operation: "encrypt_read of box \(number)")
        }
        remember(number &+ 1, message.nextMessageBoxIndex)
        return message
    }

    /// One read with a fresh `encrypt_read` (a new envelope, so no courier cache is reused).
    private func readOnce(_ number: UInt64, _ boxIndex: MessageBoxIndex, mode: ReadAttempt) async throws -> [UInt8]? {
        let message = try await encryptRead(number, boxIndex)
        // The message goes into the request and the request into the thin client, which keeps
        // only the encoded frame while the read waits: neither stays alive in this frame.
        var request = ResendingRequest.read(consume message, readCapability: readCapability, index: boxIndex, noRetryOnBoxIDNotFound: false)
        let polling: Bool
        switch mode {
        case .poll:
            request.noRetryOnBoxIDNotFound = true
            polling = true
        case .daemonRetry(let limit):
            if let limit { request.deadline = .after(limit) }
            polling = false
        }
        let result: ResendingResult
        do {
            result = try await client.startResendingEncryptedMessage(consume request)
        } catch let error as ThinClientError where error.code == .boxIDNotFound && polling {
            return nil
        } catch let error as ThinClientError where error.code == .timeout && !polling {
            if case .daemonRetry(.some) = mode { return nil }
            throw boxTransportError(error, operation: "read of box \(number)")
        } catch let error as ThinClientError where error.code == .tombstone {
            throw BoxTransportError(.deleted, "box \(number) holds a tombstone (deleted)")
        } catch {
            throw boxTransportError(error, operation: "read of box \(number)")
        }
        return try box(number, from: result)
    }

    /// The box `number` a read's reply holds, checked: a reply without plaintext is a
    /// tombstone, and a box is exactly the payload size.
    nonisolated func box(_ number: UInt64, from reply: ResendingResult) throws(BoxTransportError) -> [UInt8] {
        guard let plaintext = reply.plaintext, !plaintext.isEmpty else {
            throw BoxTransportError(.deleted, "box \(number) holds a tombstone (deleted)")
        }
        guard plaintext.count == payloadSize else {
            throw BoxTransportError(.invalidPayloadSize, "box \(number) holds \(plaintext.count) bytes, expected \(payloadSize)")
        }
        return plaintext
    }

    /// The cached indexes, for a checkpoint; see ``restoreIndexes(_:)``.
    public func indexSnapshot() -> BoxIndexSnapshot {
        indexes.snapshot
    }

    /// Adds cached indexes from an earlier ``indexSnapshot()`` of the same channel.
    ///
    /// - Throws: ``BoxTransportError/Code-swift.struct/failed`` if an entry is not a 104-byte
    ///   index whose counter matches this channel's first index plus the box number (the
    ///   snapshot belongs to another channel or is corrupt); nothing is restored then.
    public func restoreIndexes(_ snapshot: BoxIndexSnapshot) throws {
        var entries: [(UInt64, MessageBoxIndex)] = []
        for (number, bytes) in snapshot.anchors {
            guard let index = try? MessageBoxIndex(bytes: bytes), indexes.isConsistent(number, index) else {
                throw BoxTransportError(.failed, "index snapshot entry for box \(number) does not belong to this channel")
            }
            entries.append((number, index))
        }
        for (number, index) in entries.sorted(by: { $0.0 < $1.0 }) {
            indexes.insert(number, index)
        }
    }

    /// The BACAP index of box `number`, from the cache or by stepping from the closest cached one.
    ///
    /// Lookups that overlap share their steps: each index is asked of the daemon once, however
    /// many reads and writes of the boxes beyond it wait on it (a read-ahead of *n* boxes would
    /// otherwise walk 1 + 2 + … + *n* steps from the same cached index).
    func messageBoxIndex(of number: UInt64) async throws -> MessageBoxIndex {
        if let index = indexes.exact(number) { return index }
        var (position, index) = indexes.closest(atOrBelow: number)
        guard number - position <= configuration.maxIndexSteps else {
            throw BoxTransportError(
                .failed, "box \(number) is \(number - position) steps past the closest cached index (limit \(configuration.maxIndexSteps))"
            )
        }
        while position < number {
            position += 1
            if let cached = indexes.exact(position) {
                index = cached
                continue
            }
            let step: Task<MessageBoxIndex, any Error>
            if let running = steps[position] {
                step = running
            } else {
                step = Task { [client, index] in try await client.nextMessageBoxIndex(after: index) }
                steps[position] = step
            }
            let outcome = await step.result
            if steps[position] == step { steps[position] = nil }
            switch outcome {
            case .success(let next):
                index = next
                remember(position, next)
            case .failure(let error):
                throw boxTransportError(error, operation: "next_message_box_index")
            }
        }
        return index
    }

    private func remember(_ number: UInt64, _ index: MessageBoxIndex) {
        indexes.insert(number, index)
    }
}
