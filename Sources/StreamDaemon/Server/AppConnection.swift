import IPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// One app connection: the handshake, then concurrent requests and events.
///
/// The reader decodes frames with ``IPCFrameDecoder`` (sizes checked before allocating) and
/// runs each request as a child task, at most ``DaemonConfiguration/maxRequestsPerConnection``
/// at once; a single writer task sends replies and events in the order they are produced.
struct AppConnection {
    /// What every connection shares.
    struct Context: Sendable {
        var configuration: DaemonConfiguration
        var host: StreamHost
        var logger: Logger
        var instance: [UInt8]
        var status: @Sendable () async -> IPCDaemonStatus
    }

    let connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let context: Context

    /// Features this daemon offers in `hello`.
    static let features = ["offsets", "multicast", "events", "sync"]

    /// Sends one error and closes (the connection limit was reached).
    static func refuse(_ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>, _ error: IPCError) async {
        try? await connection.executeThenClose { _, outbound in
            try await outbound.write(ByteBuffer(bytes: IPCServerMessage.goodbye(error).framed()))
        }
    }

    /// The peer's uid from `SO_PEERCRED`.
    private func peerUserID() async -> UInt32? {
        guard let provider = connection.channel as? any SocketOptionProvider else { return nil }
        let credentials: PeerCredentials? = try? await provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED)
        ).get()
        return credentials?.uid
    }

    /// Serves the connection until the app closes it or breaks the protocol.
    func serve() async {
        let logger = context.logger
        guard let uid = await peerUserID(), uid == currentUserID() else {
            logger.warning("refused an app connection from another user")
            await Self.refuse(connection, IPCError(.permissionDenied, "streamd serves only its own user"))
            return
        }
        let (outgoing, sink) = AsyncStream.makeStream(of: [UInt8].self, bufferingPolicy: .unbounded)
        let state = NIOLockedValueBox(State())
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in outgoing {
                            try await outbound.write(ByteBuffer(bytes: frame))
                            state.withLockedValue { $0.queuedFrames -= 1 }
                        }
                    }
                    group.addTask {
                        // The reader or the watchdog ended (the app closed, or broke the protocol):
                        // the writer still drains what was queued, a goodbye included, then ends.
                        defer { sink.finish() }
                        try await withThrowingTaskGroup(of: Void.self) { inner in
                            inner.addTask { try await readLoop(inbound, sink: sink, state: state) }
                            inner.addTask { try await watchdog(state: state, sink: sink) }
                            defer { inner.cancelAll() }
                            try await inner.next()
                        }
                    }
                    for try await _ in group {}
                }
            }
        } catch {
            logger.debug("app connection ended", metadata: ["reason": "\(error)"])
        }
        if let subscription = state.withLockedValue({ $0.subscription }) {
            await context.host.unsubscribe(subscription)
        }
    }

    /// Mutable per-connection state shared by the reader, the requests and the watchdog.
    struct State {
        var negotiated: UInt64?
        var inFlight = 0
        var subscription: UInt64?
        var lastProgress = ContinuousClock.now
        var halfFrame = false
        /// Frames queued for the app and not yet written.
        var queuedFrames = 0
    }

    /// Events queued for an app beyond which further events are dropped until it reads: events
    /// are hints (the state is always in `status`), replies are never dropped.
    static let maxQueuedFramesForEvents = 1024

    private struct ProtocolViolation: Error, CustomStringConvertible {
        var description: String
    }

    /// Closes connections that never say `hello` or stall in the middle of a frame.
    private func watchdog(state: NIOLockedValueBox<State>, sink: AsyncStream<[UInt8]>.Continuation) async throws {
        let timeout = context.configuration.clientTimeout
        while true {
            try await Task.sleep(for: min(timeout, .seconds(1)))
            let (stalled, silent) = state.withLockedValue { state in
                let idle = ContinuousClock.now - state.lastProgress
                return (state.halfFrame && idle > timeout, state.negotiated == nil && idle > timeout)
            }
            if stalled {
                send(.goodbye(IPCError(.malformed, "a frame was left unfinished for \(timeout)")), to: sink, state: state)
                throw ProtocolViolation(description: "a frame was left unfinished for \(timeout)")
            }
            if silent {
                send(.goodbye(IPCError(.helloRequired, "no hello within \(timeout)")), to: sink, state: state)
                throw ProtocolViolation(description: "no hello within \(timeout)")
            }
        }
    }

    private func readLoop(
        _ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, sink: AsyncStream<[UInt8]>.Continuation, state: NIOLockedValueBox<State>
    ) async throws {
        var decoder = IPCFrameDecoder()
        try await withThrowingDiscardingTaskGroup { requests in
            for try await buffer in inbound {
                decoder.append(buffer.readableBytesView)
                while true {
                    let payload: [UInt8]?
                    do throws(IPCError) {
                        payload = try decoder.nextFrame()
                    } catch {
                        send(.goodbye(error), to: sink, state: state)
                        throw ProtocolViolation(description: error.description)
                    }
                    guard let payload else { break }
                    try handleFrame(payload, requests: &requests, sink: sink, state: state)
                }
                let buffered = decoder.bufferedByteCount
                state.withLockedValue {
                    $0.halfFrame = buffered > 0
                    $0.lastProgress = .now
                }
            }
            // The app closed its end: nobody will read the answers to its long polls.
            requests.cancelAll()
        }
    }

    private func handleFrame(
        _ payload: [UInt8], requests: inout ThrowingDiscardingTaskGroup<any Error>, sink: AsyncStream<[UInt8]>.Continuation,
        state: NIOLockedValueBox<State>
    ) throws {
        let message: IPCRequestMessage
        do {
            message = try IPCRequestMessage(decoding: payload)
        } catch {
            // A frame that is not a request at all breaks the protocol; a request with a
            // readable id but a bad field only fails that request.
            guard let id = error.requestID else {
                send(.goodbye(error), to: sink, state: state)
                throw ProtocolViolation(description: error.description)
            }
            send(.reply(id: id, .failure(error)), to: sink, state: state)
            return
        }
        let id = message.id
        if case .hello(let minimum, let maximum, _) = message.request {
            guard state.withLockedValue({ $0.negotiated }) == nil else {
                // docs/IPC.md section 4: the version is fixed for the connection once negotiated.
                send(.reply(id: id, .failure(IPCError(.invalidArgument, "hello was already completed on this connection"))), to: sink, state: state)
                return
            }
            guard let version = IPCVersion.negotiate(clientMin: minimum, clientMax: maximum) else {
                let supported = IPCVersion.supported
                // docs/IPC.md section 4: the app may try again with another range; the watchdog
                // still closes a connection that has not completed hello within the client timeout.
                send(.reply(id: id, .failure(IPCError(.unsupportedVersion, "streamd speaks versions \(supported.lowerBound)...\(supported.upperBound)"))), to: sink, state: state)
                return
            }
            state.withLockedValue { $0.negotiated = version }
            send(.reply(id: id, .success(.hello(version: version, daemon: daemonVersion, instance: context.instance, features: Self.features))), to: sink, state: state)
            return
        }
        guard state.withLockedValue({ $0.negotiated }) != nil else {
            // docs/IPC.md section 4: the connection stays open until hello succeeds (or the watchdog closes it).
            send(.reply(id: id, .failure(IPCError(.helloRequired, "send hello first"))), to: sink, state: state)
            return
        }
        let admitted = state.withLockedValue { state in
            guard state.inFlight < context.configuration.maxRequestsPerConnection else { return false }
            state.inFlight += 1
            return true
        }
        guard admitted else {
            var error = IPCError(.tooManyRequests, "at most \(context.configuration.maxRequestsPerConnection) requests may be in flight per connection")
            error.retryAfterMilliseconds = 100
            send(.reply(id: id, .failure(error)), to: sink, state: state)
            return
        }
        requests.addTask {
            let result = await perform(message.request, sink: sink, state: state)
            state.withLockedValue { $0.inFlight -= 1 }
            send(.reply(id: id, result), to: sink, state: state)
        }
    }

    private func send(_ message: IPCServerMessage, to sink: AsyncStream<[UInt8]>.Continuation, state: NIOLockedValueBox<State>) {
        state.withLockedValue { $0.queuedFrames += 1 }
        sink.yield(IPCFraming.frame(message.encoded()))
    }

    /// Carries out one request.
    private func perform(_ request: IPCRequest, sink: AsyncStream<[UInt8]>.Continuation, state: NIOLockedValueBox<State>) async -> Result<IPCReply, IPCError> {
        let host = context.host
        do throws(IPCError) {
            switch request {
            case .hello:
                return .failure(IPCError(.invalidArgument, "hello was already sent"))
            case .create(let name, let mode):
                let (info, address) = try await host.create(name: name, mode: mode)
                return .success(.created(info, address: address))
            case .join(let name, let address):
                let (info, address) = try await host.join(name: name, address: address)
                return .success(.created(info, address: address))
            case .list:
                return .success(.list(await host.list()))
            case .status(let name):
                return .success(.status(try await host.status(name: name)))
            case .address(let name, let readOnly):
                return .success(.address(try await host.address(name: name, readOnly: readOnly)))
            case .close(let name, let wait):
                try await host.close(name: name, wait: wait)
                return .success(.ok)
            case .remove(let name):
                try await host.remove(name: name)
                return .success(.ok)
            case .write(let name, let offset, let data):
                let (accepted, end) = try await host.write(name: name, offset: offset, data: data)
                return .success(.written(accepted: accepted, offset: end))
            case .read(let name, let offset, let maxLength, let wait):
                let (start, bytes, end) = try await host.read(name: name, offset: offset, maxLength: min(maxLength, IPCLimits.maxChunk), wait: wait)
                return .success(.data(offset: start, bytes: bytes, end: end))
            case .consume(let name, let offset):
                return .success(.consumed(offset: try await host.consume(name: name, offset: offset)))
            case .sync(let name):
                try await host.sync(name: name)
                return .success(.ok)
            case .subscribe(let names):
                try await subscribe(names.map { Set($0.map(\.rawValue)) }, sink: sink, state: state)
                return .success(.ok)
            case .daemonStatus:
                return .success(.daemonStatus(await context.status()))
            }
        } catch {
            return .failure(error)
        }
    }

    private func subscribe(_ names: Set<String>?, sink: AsyncStream<[UInt8]>.Continuation, state: NIOLockedValueBox<State>) async throws(IPCError) {
        guard state.withLockedValue({ $0.subscription }) == nil else {
            throw IPCError(.invalidArgument, "this connection is already subscribed")
        }
        let (id, events) = await context.host.subscribe(names: names)
        state.withLockedValue { $0.subscription = id }
        Task {
            for await event in events {
                let admitted = state.withLockedValue { state in
                    guard state.queuedFrames < Self.maxQueuedFramesForEvents else { return false }
                    state.queuedFrames += 1
                    return true
                }
                if admitted { sink.yield(IPCServerMessage.event(event).framed()) }
            }
        }
    }
}

/// `struct ucred` from `SO_PEERCRED`: pid, uid, gid.
struct PeerCredentials: Sendable {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// streamd's version, as reported in `hello` and `status`.
public let daemonVersion = "streamd 0.1.0"
