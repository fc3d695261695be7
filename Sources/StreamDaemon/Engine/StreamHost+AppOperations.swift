import IPC
import Logging
import StreamEngine
import StreamStore

#if canImport(Glibc)
import Glibc
#endif

/// The operations apps ask for over the app socket; each returns once its promise holds.
extension StreamHost {
    // MARK: Lifecycle

    /// Creates a new stream (listener, or multicast writer) with a fresh address.
    func create(name: StreamName, mode: IPCStreamMode) async throws(IPCError) -> (IPCStreamInfo, String) {
        let address = StreamAddress.generate(mode: mode == .multicast ? .multicast : .endToEnd)
        let stream = try await open(name: name, address: address, role: .listener)
        return (info(stream), address.encoded)
    }

    /// Joins a stream by address (dialer, or multicast reader with a read-only address).
    func join(name: StreamName, address text: String) async throws(IPCError) -> (IPCStreamInfo, String) {
        let address: StreamAddress
        do {
            address = try StreamAddress(parsing: text)
        } catch {
            throw IPCError(.invalidAddress, error.message)
        }
        if case .multicastWriter = address.kind {
            throw IPCError(.invalidAddress, "this is a multicast writer's address; join with the read-only address (streamctl address NAME --read-only)")
        }
        let stream = try await open(name: name, address: address, role: .dialer)
        return (info(stream), text)
    }

    private func open(name: StreamName, address: StreamAddress, role: StreamRole) async throws(IPCError) -> ManagedStream {
        try checkRunning()
        let key = name.rawValue
        guard names[key] == nil, damaged[key] == nil, !reservedNames.contains(key) else {
            throw IPCError(.nameInUse, "a stream named \(key) already exists")
        }
        guard streams.count + damaged.count + reservedNames.count < configuration.maxStreams else {
            throw IPCError(.tooManyRequests, "the daemon already holds its maximum of \(configuration.maxStreams) streams")
        }
        guard let boxSize = await knownBoxSize() else {
            throw IPCError(.kpclientdUnavailable, "kpclientd has not connected yet, so the box size is unknown; try again shortly")
        }
        var machine: StreamMachine
        do {
            machine = try StreamMachine(
                address: address, role: role, boxSize: boxSize, configuration: configuration.streamConfiguration,
                durability: .explicit, now: now, randomSeed: UInt64.random(in: .min ... .max))
        } catch {
            throw IPCError(.invalidAddress, error.message)
        }
        // Records made so far are folded into the first checkpoint.
        _ = machine.takeJournal()
        let metadata = StreamMetadata(role: role, address: address, createdMilliseconds: Self.wallClockMilliseconds())
        reservedNames.insert(key)
        defer { reservedNames.remove(key) }
        var batch = CommitBatch()
        batch.created.append((name: key, metadata: metadata.encoded(), checkpoint: machine.checkpoint.encoded(), checkpointSequence: machine.checkpoint.sequence))
        let ids: [StoredStreamID]
        do {
            ids = try await commitNow(batch)
        } catch {
            throw IPCError(.internal, "storing the new stream failed: \(error)")
        }
        guard let id = ids.first else { throw IPCError(.internal, "the database returned no id for the new stream") }
        machine.markDurable(through: machine.checkpoint.sequence, now: now)
        let stream = ManagedStream(id: id, name: name, metadata: metadata, machine: machine, rowsSinceCheckpoint: 0)
        streams[id] = stream
        names[key] = id
        logger.info("stream opened", metadata: ["stream": "\(key)", "role": "\(stream.ipcRole)", "event": "stream-opened"])
        step(stream)
        return stream
    }

    /// Deletes a stream and its stored state (damaged streams too).
    func remove(name: StreamName) async throws(IPCError) {
        try checkRunning()
        let key = name.rawValue
        let id: StoredStreamID
        if let stream = lookupOptional(name) {
            id = stream.id
            forget(stream)
        } else if let entry = damaged.removeValue(forKey: key) {
            id = entry.id
        } else {
            throw IPCError(.noSuchStream, "no stream is named \(key)")
        }
        var batch = CommitBatch()
        batch.removed.append(id)
        do {
            _ = try await commitNow(batch)
        } catch {
            throw IPCError(.internal, "removing the stream failed: \(error)")
        }
        logger.info("stream removed", metadata: ["stream": "\(key)"])
    }

    // MARK: Queries

    /// Every stream, damaged ones included, sorted by name.
    func list() -> [IPCStreamInfo] {
        var all = streams.values.map { info($0) }
        for (name, entry) in damaged {
            guard let streamName = try? StreamName(name) else { continue }
            all.append(IPCStreamInfo.damaged(name: streamName, reason: entry.reason))
        }
        return all.sorted { $0.name.rawValue < $1.name.rawValue }
    }

    /// One stream's state, with its engine's diagnostics.
    func status(name: StreamName) throws(IPCError) -> IPCStreamInfo {
        if let entry = damaged[name.rawValue] { return IPCStreamInfo.damaged(name: name, reason: entry.reason) }
        let stream = try lookup(name)
        var described = info(stream)
        described.engine = stream.machine.diagnostics
        return described
    }

    /// The stream's address, or the read-only address of a multicast stream.
    func address(name: StreamName, readOnly: Bool) async throws(IPCError) -> String {
        let stream = try lookup(name)
        guard readOnly else { return stream.metadata.address.encoded }
        guard stream.metadata.address.mode == .multicast else {
            throw IPCError(.invalidArgument, "only multicast streams have read-only addresses")
        }
        guard let store = await link.store, kpclientdUp else {
            throw IPCError(.kpclientdUnavailable, "kpclientd is not connected; the read-only address needs it")
        }
        do {
            return try await stream.metadata.address.readOnly(store: store).encoded
        } catch {
            throw IPCError(.kpclientdUnavailable, "deriving the read-only address failed: \(error)")
        }
    }

    // MARK: Data

    /// Writes `data` at stream offset `offset`; returns once the accepted bytes are durable.
    ///
    /// Bytes below the stream's current end are already held and are skipped (a retried write
    /// is idempotent); a gap is a ``IPCError/Code/wrongOffset`` carrying the expected offset. It
    /// may accept only a prefix. When the send buffer is full it waits up to ``writeRoomWait``
    /// for room, then throws ``IPCError/Code/busy`` with a retry hint.
    func write(name: StreamName, offset: UInt64, data: [UInt8]) async throws(IPCError) -> (accepted: UInt64, offset: UInt64) {
        var stream = try usable(name)
        let end = offset + UInt64(data.count)
        while true {
            let written = stream.inspect { $0.checkpoint.bytesWritten }
            guard offset <= written else {
                var error = IPCError(.wrongOffset, "the stream holds \(written) bytes; a write must start at or below that offset")
                error.expectedOffset = written
                throw error
            }
            if end <= written {
                // Everything is held already: confirm once it is durable.
                let sequence = stream.inspect { $0.lastSequence }
                try await waitUntil(name) { $0.machine.durableSequence >= sequence }
                return (0, end)
            }
            // appWrite refuses a closed or read-only stream even when there is no room (a zero
            // capacity alone would wait forever); with no room it accepts nothing.
            let skip = Int(written - offset)
            let accepted: Int
            let sequence: UInt64
            do {
                (accepted, sequence) = try stream.machine.appWrite(data[skip...], now: now)
            } catch {
                throw Self.ipcError(error)
            }
            if accepted > 0 {
                step(stream)
                try await waitUntil(name) { $0.machine.durableSequence >= sequence }
                return (UInt64(accepted), written + UInt64(accepted))
            }
            // Full: wait a little for room, then tell the app to come back.
            let deadline = now + Self.writeRoomWait
            let wake = Task { [weak self] in
                try? await Task.sleep(for: Self.writeRoomWait)
                await self?.wakeAll(name)
            }
            defer { wake.cancel() }
            try await waitUntil(name) {
                $0.machine.writeCapacity > 0 || $0.machine.checkpoint.bytesWritten != written || $0.machine.checkpoint.closeRequested
                    || self.now >= deadline
            }
            stream = try lookup(name)
            if stream.machine.writeCapacity == 0, stream.machine.checkpoint.bytesWritten == written, !stream.machine.checkpoint.closeRequested {
                throw IPCError(.busy, "the stream's send buffer is full; retry later", retryAfterMilliseconds: 500)
            }
        }
    }

    /// Accepts a write at once when the stream has room for some of its new bytes, and answers
    /// it through `reply` (on the actor) once they are durable, with no task waiting meanwhile:
    /// the common case of ``write(name:offset:data:)``, with the same outcome.
    ///
    /// - Returns: false, having changed nothing, when the write must wait for room or holds no
    ///   new bytes, or when its offset is past the stream's end: the caller then uses
    ///   ``write(name:offset:data:)``.
    func startWrite(
        name: StreamName, offset: UInt64, data: [UInt8],
        reply: @escaping @Sendable (Result<(accepted: UInt64, offset: UInt64), IPCError>) -> Void
    ) -> Bool {
        let stream: ManagedStream
        do throws(IPCError) {
            stream = try usable(name)
        } catch {
            reply(.failure(error))
            return true
        }
        let written = stream.inspect { $0.checkpoint.bytesWritten }
        guard offset <= written, offset + UInt64(data.count) > written, stream.inspect({ $0.writeCapacity }) > 0 else { return false }
        let accepted: Int
        let sequence: UInt64
        do {
            (accepted, sequence) = try stream.machine.appWrite(offset == written ? data : Array(data[Int(written - offset)...]), now: now)
        } catch {
            reply(.failure(Self.ipcError(error)))
            return true
        }
        guard accepted > 0 else { return false }
        let result = (accepted: UInt64(accepted), offset: written + UInt64(accepted))
        stream.durableReplies.append((sequence, { outcome in reply(outcome.map { result }) }))
        step(stream)
        return true
    }

    /// Returns received bytes from stream offset `offset` without consuming them.
    ///
    /// - Parameter wait: whether to wait until bytes beyond `offset` arrive or the peer closes.
    func read(name: StreamName, offset: UInt64, maxLength: Int, wait: Bool) async throws(IPCError) -> (offset: UInt64, bytes: [UInt8], end: Bool) {
        while true {
            let stream = try lookup(name)
            let checkpoint = stream.machine.checkpoint
            guard checkpoint.inboundChannelCredential != nil else { throw IPCError(.writeOnly, "this end of the stream only writes") }
            // docs/IPC.md section 6: a read past what was received is a wrong offset, not a wait.
            guard offset <= checkpoint.deliveredBytes else {
                var failure = IPCError(.wrongOffset, "read at \(offset) but \(checkpoint.deliveredBytes) bytes were received")
                failure.expectedOffset = checkpoint.deliveredBytes
                throw failure
            }
            let bytes: [UInt8]
            do {
                bytes = try stream.machine.peek(from: offset, maxLength: maxLength)
            } catch {
                var failure = IPCError(.wrongOffset, error.message)
                failure.expectedOffset = checkpoint.bytesConsumed
                throw failure
            }
            let atEnd = checkpoint.peerFinOffset.map { offset + UInt64(bytes.count) >= $0 } ?? false
            if !bytes.isEmpty || atEnd {
                // Hand out only bytes (and the end) whose receipt is durable: otherwise a crash
                // restores the stream without them and the app's `consume` of bytes it already
                // processed is refused (wrongOffset), breaking docs/IPC.md section 6.
                let sequence = stream.machine.lastSequence
                try await waitUntil(name) { $0.machine.durableSequence >= sequence }
                return (offset, bytes, atEnd)
            }
            if !wait { return (offset, bytes, atEnd) }
            if let failure = stream.failure { throw Self.ipcError(failure) }
            try await waitUntil(name) { $0.machine.checkpoint.deliveredBytes > offset || $0.machine.checkpoint.peerFinOffset != nil || $0.failure != nil }
        }
    }

    /// Confirms that the app processed everything before `offset`; returns once that is durable.
    func consume(name: StreamName, offset: UInt64) async throws(IPCError) -> UInt64 {
        let stream = try usable(name)
        let sequence: UInt64
        do {
            sequence = try stream.machine.consume(through: offset, now: now)
        } catch {
            var failure = IPCError(.wrongOffset, error.message)
            failure.expectedOffset = stream.machine.checkpoint.deliveredBytes
            throw failure
        }
        step(stream)
        try await waitUntil(name) { $0.machine.durableSequence >= sequence }
        return offset
    }

    /// Returns once the peer acknowledged every byte written so far (multicast: verified).
    func sync(name: StreamName) async throws(IPCError) {
        try await waitUntil(name) { $0.machine.isWriteSettled && $0.machine.durableSequence >= $0.machine.lastSequence }
    }

    /// Closes this end's direction; with `wait`, returns once the peer acknowledged the end.
    func close(name: StreamName, wait: Bool) async throws(IPCError) {
        let stream = try usable(name)
        if !stream.machine.checkpoint.closeRequested {
            do {
                try stream.machine.appClose(now: now)
            } catch {
                throw Self.ipcError(error)
            }
            step(stream)
        }
        let sequence = stream.machine.lastSequence
        try await waitUntil(name) { $0.machine.durableSequence >= sequence && (!wait || $0.machine.isClosed) }
    }

    // MARK: Helpers

    /// The box size from kpclientd's geometry, waiting up to ten seconds for a first connection.
    private func knownBoxSize() async -> Int? {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(10)
        while true {
            if let size = await link.boxSize { return size }
            guard clock.now < deadline, !Task.isCancelled else { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    func lookup(_ name: StreamName) throws(IPCError) -> ManagedStream {
        if let stream = lookupOptional(name) { return stream }
        if let entry = damaged[name.rawValue] {
            throw IPCError(.damaged, "stream \(name.rawValue) is quarantined: \(entry.reason)")
        }
        throw IPCError(.noSuchStream, "no stream is named \(name.rawValue)")
    }

    /// A stream that can still change: not failed.
    private func usable(_ name: StreamName) throws(IPCError) -> ManagedStream {
        let stream = try lookup(name)
        if let failure = stream.failure { throw Self.ipcError(failure) }
        return stream
    }

    private func lookupOptional(_ name: StreamName) -> ManagedStream? {
        names[name.rawValue].flatMap { streams[$0] }
    }

    private func checkRunning() throws(IPCError) {
        if isStopping { throw IPCError(.shuttingDown, "streamd is shutting down") }
        if fatalError != nil { throw IPCError(.internal, "streamd stopped after a storage failure") }
    }

    /// Suspends until `condition` holds for the named stream, re-checking after each change.
    ///
    /// Throws if the stream fails, is removed, the daemon stops, or the request is cancelled.
    func waitUntil(_ name: StreamName, _ condition: (ManagedStream) -> Bool) async throws(IPCError) {
        while true {
            let stream = try lookup(name)
            if condition(stream) { return }
            try checkRunning()
            if let failure = stream.failure { throw Self.ipcError(failure) }
            if stream.machine.isHalted { throw IPCError(.shuttingDown, "the stream was stopped") }
            if Task.isCancelled { throw IPCError(.shuttingDown, "the request was cancelled") }
            await withTaskCancellationHandler {
                await suspend(on: stream)
            } onCancel: {
                Task { await self.wakeAll(name) }
            }
        }
    }

    /// Parks the caller in `stream`'s waiter list until the stream is woken.
    ///
    /// A method of the actor, not a closure: Swift 6.3 runs a continuation closure that does not
    /// capture `self` off the actor (even inside an actor method), where appending to the list
    /// raced with other waiters and with ``ManagedStream/wake()``: waiters were lost and the
    /// heap corrupted (`StreamWaiterTests`).
    private func suspend(on stream: ManagedStream) async {
        await withCheckedContinuation { continuation in
            self.preconditionIsolated()
            stream.waiters.append(continuation)
        }
    }

    /// How long a write waits for room in a full send buffer before it is refused with `busy`.
    static let writeRoomWait = Duration.seconds(2)

    /// Wakes every request waiting on the named stream; each re-checks its condition.
    func wakeAll(_ name: StreamName) {
        if let stream = lookupOptional(name) { wake(stream) }
    }

    /// Answers the stream's fast-path writes whose wait is over, then wakes every request
    /// waiting on it; each re-checks its condition.
    func wake(_ stream: ManagedStream) {
        if !stream.durableReplies.isEmpty { settleReplies(stream) }
        stream.wake()
    }

    /// Runs the replies of fast-path writes that are durable now, in order; if the stream can
    /// no longer make the rest durable, runs them with the error ``waitUntil(_:_:)`` would throw.
    private func settleReplies(_ stream: ManagedStream) {
        let durable = stream.inspect { $0.durableSequence }
        var settled = 0
        for entry in stream.durableReplies {
            guard entry.sequence <= durable else { break }
            entry.reply(.success(()))
            settled += 1
        }
        stream.durableReplies.removeFirst(settled)
        guard !stream.durableReplies.isEmpty, let error = waitEndingError(stream) else { return }
        let failed = stream.durableReplies
        stream.durableReplies.removeAll()
        for entry in failed { entry.reply(.failure(error)) }
    }

    /// Why a request waiting on `stream` can wait no longer, in ``waitUntil(_:_:)``'s order;
    /// `nil` while it can.
    private func waitEndingError(_ stream: ManagedStream) -> IPCError? {
        guard lookupOptional(stream.name) === stream else {
            return IPCError(.noSuchStream, "no stream is named \(stream.name.rawValue)")
        }
        do throws(IPCError) {
            try checkRunning()
        } catch {
            return error
        }
        if let failure = stream.failure { return Self.ipcError(failure) }
        if stream.inspect({ $0.isHalted }) { return IPCError(.shuttingDown, "the stream was stopped") }
        return nil
    }

    static func ipcError(_ error: StreamError) -> IPCError {
        switch error.code {
        case .closed: return IPCError(.closed, error.message)
        case .readOnly: return IPCError(.readOnly, error.message)
        case .halted: return IPCError(.shuttingDown, error.message)
        default: return IPCError(.streamFailed, "\(error.code): \(error.message)")
        }
    }

    /// A stream's state as apps see it; secret-free.
    func info(_ stream: ManagedStream) -> IPCStreamInfo {
        let machine = stream.machine
        let checkpoint = machine.checkpoint
        let state: IPCStreamState
        if stream.failure != nil {
            state = .failed
        } else if machine.isClosed && (checkpoint.inboundChannelCredential == nil || checkpoint.peerFinOffset != nil) {
            state = .closed
        } else if checkpoint.closeRequested {
            state = .closing
        } else {
            state = .open
        }
        return IPCStreamInfo(
            name: stream.name, role: stream.ipcRole, state: state,
            bytesWritten: checkpoint.bytesWritten,
            bytesAcked: Self.acknowledgedBytes(checkpoint),
            bytesReceived: checkpoint.deliveredBytes, bytesConsumed: checkpoint.bytesConsumed,
            readable: UInt64(checkpoint.readableCount), writeBuffered: UInt64(checkpoint.writeBufferCount),
            writeClosed: checkpoint.closeRequested, peerClosed: checkpoint.peerFinOffset != nil,
            reason: stream.failure.map { "\($0.code): \($0.message)" })
    }

    /// App bytes the peer acknowledged (in multicast: verified in the store).
    static func acknowledgedBytes(_ checkpoint: StreamCheckpoint) -> UInt64 {
        checkpoint.bytesWritten - UInt64(checkpoint.writeBufferCount) - UInt64(checkpoint.unackedDataBytes)
    }

    static func wallClockMilliseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
    }
}
