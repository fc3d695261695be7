import IPC
import NIOCore
import NIOPosix

/// A connection to streamd: the Swift library apps use.
///
/// ```swift
/// let client = try await StreamdClient.connect(socketPath: StreamdClient.defaultSocketPath())
/// let (_, address) = try await client.create("chat")
/// try await client.send("chat", bytes: Array("hello".utf8))   // durable in the daemon
/// ```
///
/// Requests may be issued concurrently; each waits for its own reply. ``issue(_:)`` and
/// ``reply(to:)`` pipeline requests: the daemon carries out one connection's requests in the
/// order it reads them, so writes issued at successive offsets take effect in that order
/// (``send(_:bytes:at:depth:chunkSize:)`` keeps several in flight). Daemon refusals throw
/// ``IPC/IPCError`` (with stable codes); connection problems throw ``StreamClientError``.
public actor StreamdClient {
    /// What the daemon said in `hello`.
    public struct Hello: Sendable, Hashable {
        /// The negotiated protocol version.
        public var version: UInt64
        /// The daemon's software version.
        public var daemon: String
        /// The daemon's per-run instance id: it changes when the daemon restarts.
        public var instance: [UInt8]
        /// Optional features the daemon offers.
        public var features: [String]
    }

    /// The socket this client is connected to.
    public nonisolated let socketPath: String
    /// The daemon's `hello`, once connected.
    public private(set) var hello: Hello?

    /// The connection's channel: requests are written straight onto it.
    private let channel: any Channel
    private var pending: [UInt64: Pending] = [:]
    private var nextID: UInt64 = 1
    private var closedError: StreamClientError?
    private var eventSink: AsyncStream<IPCEvent>.Continuation?
    private var connectionTask: Task<Void, Never>?

    /// A request issued on this connection and not yet answered: ``reply(to:)`` waits for its reply.
    public struct PendingReply: Sendable, Hashable {
        /// The request's id on this connection.
        public let id: UInt64
    }

    /// Where an issued request stands.
    private enum Pending {
        /// Sent; nobody waits for the reply yet.
        case sent
        /// Sent, and a caller waits for the reply.
        case awaited(CheckedContinuation<Result<IPCReply, IPCError>, any Error>)
        /// The reply came before anybody waited for it.
        case answered(Result<IPCReply, IPCError>)
    }

    private init(socketPath: String, channel: any Channel) {
        self.socketPath = socketPath
        self.channel = channel
    }

    /// The socket streamd uses by default: `$STREAMD_SOCKET`, else `$XDG_RUNTIME_DIR/streamd/streamd.sock`.
    public static func defaultSocketPath(environment: [String: String]) -> String {
        if let path = environment["STREAMD_SOCKET"], !path.isEmpty { return path }
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty { return runtime + "/streamd/streamd.sock" }
        return "/run/user/\(currentUserID())/streamd/streamd.sock"
    }

    /// Connects and completes the `hello` handshake.
    ///
    /// - Throws: ``StreamClientError/Code-swift.struct/notRunning`` if nothing listens on the socket.
    public static func connect(socketPath: String, clientName: String = "StreamClient") async throws -> StreamdClient {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(unixDomainSocketPath: socketPath) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw StreamClientError(.notRunning, "cannot connect to streamd at \(socketPath): \(error); is streamd running?")
        }
        let client = StreamdClient(socketPath: socketPath, channel: channel.channel)
        await client.start(channel)
        let reply = try await client.request(.hello(minVersion: IPCVersion.supported.lowerBound, maxVersion: IPCVersion.supported.upperBound, client: clientName))
        guard case .hello(let version, let daemon, let instance, let features) = reply else {
            throw StreamClientError(.protocolViolation, "streamd answered hello with \(reply.kind)")
        }
        await client.setHello(Hello(version: version, daemon: daemon, instance: instance, features: features))
        return client
    }

    private func setHello(_ hello: Hello) { self.hello = hello }

    private func start(_ channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>) {
        connectionTask = Task { [weak self] in
            var reason = "streamd closed the connection"
            do {
                try await channel.executeThenClose { inbound, _ in
                    var decoder = IPCFrameDecoder()
                    var payloads: [[UInt8]] = []
                    for try await buffer in inbound {
                        decoder.append(buffer.readableBytesView)
                        while let payload = try decoder.nextFrame() { payloads.append(payload) }
                        // Every frame of one read in one hop onto the actor.
                        if !payloads.isEmpty { await self?.deliver(payloads) }
                        payloads.removeAll(keepingCapacity: true)
                    }
                }
            } catch {
                reason = "the connection to streamd failed: \(error)"
            }
            await self?.connectionEnded(reason)
        }
    }

    /// Handles the frames of one read, in order, until the connection ends.
    private func deliver(_ payloads: [[UInt8]]) {
        for payload in payloads where closedError == nil { deliver(payload) }
    }

    /// Handles one frame: a reply, an event or a goodbye.
    private func deliver(_ payload: [UInt8]) {
        let message: IPCServerMessage
        do {
            message = try IPCServerMessage(decoding: payload)
        } catch {
            if error.code == .unknownOperation { return }  // a newer daemon's event or reply kind
            connectionEnded("streamd sent a message this client cannot decode: \(error)")
            return
        }
        switch message {
        case .reply(let id, let result):
            switch pending[id] {
            case .sent: pending[id] = .answered(result)
            case .awaited(let continuation):
                pending[id] = nil
                continuation.resume(returning: result)
            case .answered, nil: break  // a second reply, or one to a request given up on
            }
        case .event(let event):
            eventSink?.yield(event)
        case .goodbye(let error):
            connectionEnded("streamd closed the connection: \(error.code): \(error.message)")
        }
    }

    private func connectionEnded(_ reason: String) {
        guard closedError == nil else { return }
        let error = StreamClientError(.connectionLost, reason)
        closedError = error
        channel.close(promise: nil)
        eventSink?.finish()
        let waiting = pending
        pending.removeAll()
        for case .awaited(let continuation) in waiting.values { continuation.resume(throwing: error) }
    }

    /// Sends one request and waits for its reply.
    ///
    /// - Throws: ``IPC/IPCError`` if the daemon refuses, ``StreamClientError`` if the connection fails.
    public func request(_ request: IPCRequest) async throws -> IPCReply {
        try await reply(to: try issue(request))
    }

    /// Sends one request now, without waiting: its reply is taken with ``reply(to:)``.
    ///
    /// The daemon carries out the requests of one connection in the order it reads them. Every
    /// issued request must be passed to ``reply(to:)`` or ``forget(_:)``, else its reply is kept
    /// until the connection closes.
    ///
    /// - Throws: ``StreamClientError`` if the connection is closed.
    public func issue(_ request: IPCRequest) throws(StreamClientError) -> PendingReply {
        if let closedError { throw closedError }
        let id = nextID
        nextID += 1
        pending[id] = .sent
        channel.writeAndFlush(ByteBuffer(bytes: IPCRequestMessage(id: id, request: request).framed()), promise: nil)
        return PendingReply(id: id)
    }

    /// Waits for the reply to an issued request.
    ///
    /// - Throws: ``IPC/IPCError`` if the daemon refused, ``StreamClientError`` if the connection
    ///   failed before the reply came.
    /// - Precondition: `request` was issued on this client and neither awaited nor forgotten yet.
    public func reply(to request: PendingReply) async throws -> IPCReply {
        switch pending[request.id] {
        case .answered(let result):
            pending[request.id] = nil
            return try result.get()
        case .sent:
            let result = try await withCheckedThrowingContinuation { continuation in
                pending[request.id] = .awaited(continuation)
            }
            return try result.get()
        case .awaited, nil:
            if let closedError { throw closedError }
            preconditionFailure("request \(request.id) was already awaited or forgotten")
        }
    }

    /// Gives up on an issued request: its reply, if one comes, is dropped.
    public func forget(_ request: PendingReply) {
        if case .awaited = pending[request.id] { return }  // the waiting caller takes it
        pending[request.id] = nil
    }

    /// Closes the connection; streams live on in the daemon.
    public func close() {
        connectionEnded("the client closed the connection")
        connectionTask?.cancel()
    }

    // MARK: - Operations

    /// Creates a stream; returns its description and its (secret) address.
    public func create(_ name: String, multicast: Bool = false) async throws -> (IPCStreamInfo, address: String) {
        guard case .created(let info, let address) = try await request(.create(name: try StreamName(name), mode: multicast ? .multicast : .stream)) else {
            throw unexpected("create")
        }
        return (info, address)
    }

    /// Joins a stream by address under a local name.
    public func join(_ name: String, address: String) async throws -> IPCStreamInfo {
        guard case .created(let info, _) = try await request(.join(name: try StreamName(name), address: address)) else { throw unexpected("join") }
        return info
    }

    /// Every stream the daemon holds.
    public func list() async throws -> [IPCStreamInfo] {
        guard case .list(let infos) = try await request(.list) else { throw unexpected("list") }
        return infos
    }

    /// One stream's state.
    public func status(_ name: String) async throws -> IPCStreamInfo {
        guard case .status(let info) = try await request(.status(name: try StreamName(name))) else { throw unexpected("status") }
        return info
    }

    /// The stream's address, or a multicast stream's read-only address.
    public func address(_ name: String, readOnly: Bool = false) async throws -> String {
        guard case .address(let address) = try await request(.address(name: try StreamName(name), readOnly: readOnly)) else {
            throw unexpected("address")
        }
        return address
    }

    /// Closes this end's direction; with `wait`, returns once the peer acknowledged it.
    public func closeStream(_ name: String, wait: Bool = true) async throws {
        _ = try await request(.close(name: try StreamName(name), wait: wait))
    }

    /// Deletes a stream and its state.
    public func remove(_ name: String) async throws {
        _ = try await request(.remove(name: try StreamName(name)))
    }

    /// Writes `data` at stream offset `offset`; returns the bytes newly accepted and the offset after them.
    public func write(_ name: String, offset: UInt64, data: [UInt8]) async throws -> (accepted: UInt64, offset: UInt64) {
        guard case .written(let accepted, let end) = try await request(.write(name: try StreamName(name), offset: offset, data: data)) else {
            throw unexpected("write")
        }
        return (accepted, end)
    }

    /// Reads received bytes from `offset` without consuming them.
    public func read(_ name: String, offset: UInt64, maxLength: Int = IPCLimits.maxChunk, wait: Bool = true) async throws
        -> (offset: UInt64, bytes: [UInt8], end: Bool)
    {
        guard case .data(let start, let bytes, let end) = try await request(.read(name: try StreamName(name), offset: offset, maxLength: maxLength, wait: wait)) else {
            throw unexpected("read")
        }
        return (start, bytes, end)
    }

    /// Confirms that everything before `offset` was processed; returns once that is durable.
    public func consume(_ name: String, through offset: UInt64) async throws {
        _ = try await request(.consume(name: try StreamName(name), offset: offset))
    }

    /// Returns once the peer acknowledged every byte written so far.
    public func sync(_ name: String) async throws {
        _ = try await request(.sync(name: try StreamName(name)))
    }

    /// The daemon's status.
    public func daemonStatus() async throws -> IPCDaemonStatus {
        guard case .daemonStatus(let status) = try await request(.daemonStatus) else { throw unexpected("daemon_status") }
        return status
    }

    /// Subscribes this connection to events of the named streams (`nil`: all).
    public func events(for names: [String]? = nil) async throws -> AsyncStream<IPCEvent> {
        let (stream, sink) = AsyncStream.makeStream(of: IPCEvent.self, bufferingPolicy: .bufferingNewest(1024))
        eventSink = sink
        _ = try await request(.subscribe(names: try names?.map { name throws(IPCError) in try StreamName(name) }))
        return stream
    }

    /// Writes all of `bytes` starting at `offset`, keeping up to `depth` write requests of at
    /// most `chunkSize` bytes in flight; returns the offset after them once they are all durable
    /// in the daemon.
    ///
    /// Each `written` reply still means its bytes are durable. After a partial accept (full
    /// buffers), a `busy` refusal (it waits the hinted delay), or a `wrongOffset` for a write
    /// issued behind one of those (the daemon saw it before the earlier one was accepted), it
    /// waits for every request in flight and resumes after the last durable byte, one write at a
    /// time, doubling the writes in flight up to `depth` as they are accepted whole: bytes sent
    /// again are duplicates the daemon skips. `depth` 1 sends one write at a time.
    ///
    /// - Throws: ``IPC/IPCError`` `wrongOffset` if `offset` is past the stream's end, and the
    ///   daemon's other refusals; ``StreamClientError`` if the connection fails.
    public func send(_ name: String, bytes: [UInt8], at offset: UInt64, depth: Int = 4, chunkSize: Int = IPCLimits.maxChunk) async throws -> UInt64 {
        let streamName = try StreamName(name)
        let depth = max(1, depth)
        let chunkSize = min(max(1, chunkSize), IPCLimits.maxChunk)
        let end = offset + UInt64(bytes.count)
        var durable = offset
        var next = offset
        // Writes kept in flight: back to 1 when the stream's buffer is full (the writes behind
        // would only be refused and sent again), doubled by each write accepted whole.
        var window = depth
        // `behind`: issued while an earlier write of this send was in flight.
        var inFlight: [(reply: PendingReply, end: UInt64, behind: Bool)] = []
        defer { for write in inFlight { forget(write.reply) } }
        while durable < end {
            while inFlight.count < window, next < end {
                let start = Int(next - offset)
                let chunk = Array(bytes[start..<min(bytes.count, start + chunkSize)])
                let reply = try issue(.write(name: streamName, offset: next, data: chunk))
                next += UInt64(chunk.count)
                inFlight.append((reply, next, !inFlight.isEmpty))
            }
            let write = inFlight.removeFirst()
            var pause: Duration?
            do {
                guard case .written(_, let reached) = try await reply(to: write.reply) else { throw unexpected("write") }
                durable = max(durable, reached)
                if reached >= write.end {
                    window = min(depth, window * 2)
                    continue
                }
            } catch let error as IPCError where error.code == .busy {
                pause = .milliseconds(Int(min(error.retryAfterMilliseconds ?? 200, 5_000)))
            } catch where (error as? IPCError)?.code == .wrongOffset && write.behind {
                // The daemon took it before an earlier write had room: not a gap in the caller's offsets.
            }
            // Resume after the last durable byte once nothing is in flight any more (writes
            // behind this one fail with `wrongOffset` or hold bytes sent again, harmlessly).
            while !inFlight.isEmpty {
                let later = inFlight.removeFirst()
                if case .written(_, let reached)? = try? await reply(to: later.reply) { durable = max(durable, reached) }
            }
            if let pause { try await Task.sleep(for: pause) }
            next = durable
            window = 1
        }
        return end
    }

    private func unexpected(_ operation: String) -> StreamClientError {
        StreamClientError(.protocolViolation, "streamd answered \(operation) with an unexpected reply")
    }
}
