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
/// at once; replies and events go straight onto the channel through an ``Outbox``, in the
/// order they are produced (no writer task in between).
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
        let state = NIOLockedValueBox(State())
        let outbox = Outbox(channel: connection.channel, state: state)
        do {
            try await connection.executeThenClose { inbound, _ in
                // The reader or the watchdog ended (the app closed, or broke the protocol): the
                // frames already sent, a goodbye included, are queued on the channel before it closes.
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await readLoop(inbound, outbox: outbox) }
                    group.addTask { try await watchdog(outbox: outbox) }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
        } catch {
            logger.debug("app connection ended", metadata: ["reason": "\(error)"])
        }
        if let subscription = state.withLockedValue({ $0.subscription }) {
            await context.host.unsubscribe(subscription)
        }
    }

    /// Writes frames to the app straight onto the connection's channel, in the order they are
    /// sent, and counts those not yet written (the limit for events).
    ///
    /// Frames sent while earlier ones wait for the event loop join them: the loop writes
    /// everything waiting as one buffer with one flush (several writes of one connection
    /// that one group commit made durable leave in one `write`).
    struct Outbox: Sendable {
        let channel: any Channel
        let state: NIOLockedValueBox<State>

        /// Queues one framed message on the channel; it is flushed with whatever else waits.
        func write(_ frame: [UInt8]) {
            let first = state.withLockedValue { state in
                state.queuedFrames += 1
                state.unsent.append(frame)
                return state.unsent.count == 1
            }
            guard first else { return }
            let channel = self.channel
            let state = self.state
            channel.eventLoop.execute {
                let frames = state.withLockedValue { state in
                    var frames: [[UInt8]] = []
                    swap(&frames, &state.unsent)
                    return frames
                }
                var buffer = channel.allocator.buffer(capacity: frames.reduce(0) { $0 + $1.count })
                for frame in frames { buffer.writeBytes(frame) }
                channel.writeAndFlush(buffer).whenComplete { _ in state.withLockedValue { $0.queuedFrames -= frames.count } }
            }
        }

        /// Queues a message.
        func send(_ message: IPCServerMessage) {
            write(message.framed())
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
        /// Frames waiting for the event loop to write them, in order.
        var unsent: [[UInt8]] = []
    }

    /// Events queued for an app beyond which further events are dropped until it reads: events
    /// are hints (the state is always in `status`), replies are never dropped.
    static let maxQueuedFramesForEvents = 1024

    private struct ProtocolViolation: Error, CustomStringConvertible {
        var description: String
    }

    /// Closes connections that never say `hello` or stall in the middle of a frame.
    private func watchdog(outbox: Outbox) async throws {
        let state = outbox.state
        let timeout = context.configuration.clientTimeout
        while true {
            try await Task.sleep(for: min(timeout, .seconds(1)))
            let (stalled, silent) = state.withLockedValue { state in
                let idle = ContinuousClock.now - state.lastProgress
                return (state.halfFrame && idle > timeout, state.negotiated == nil && idle > timeout)
            }
            if stalled {
                outbox.send(.goodbye(IPCError(.malformed, "a frame was left unfinished for \(timeout)")))
                throw ProtocolViolation(description: "a frame was left unfinished for \(timeout)")
            }
            if silent {
                outbox.send(.goodbye(IPCError(.helloRequired, "no hello within \(timeout)")))
                throw ProtocolViolation(description: "no hello within \(timeout)")
            }
        }
    }

    private func readLoop(_ inbound: NIOAsyncChannelInboundStream<ByteBuffer>, outbox: Outbox) async throws {
        let state = outbox.state
        var decoder = IPCFrameDecoder()
        try await withThrowingDiscardingTaskGroup { requests in
            for try await buffer in inbound {
                decoder.append(buffer.readableBytesView)
                while true {
                    let payload: [UInt8]?
                    do throws(IPCError) {
                        payload = try decoder.nextFrame()
                    } catch {
                        outbox.send(.goodbye(error))
                        throw ProtocolViolation(description: error.description)
                    }
                    guard let payload else { break }
                    try await handleFrame(payload, requests: &requests, outbox: outbox)
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

    private func handleFrame(_ payload: [UInt8], requests: inout ThrowingDiscardingTaskGroup<any Error>, outbox: Outbox) async throws {
        let state = outbox.state
        let message: IPCRequestMessage
        do {
            message = try IPCRequestMessage(decoding: payload)
        } catch {
            // A frame that is not a request at all breaks the protocol; a request with a
            // readable id but a bad field only fails that request.
            guard let id = error.requestID else {
                outbox.send(.goodbye(error))
                throw ProtocolViolation(description: error.description)
            }
            outbox.send(.reply(id: id, .failure(error)))
            return
        }
        let id = message.id
        if case .hello(let minimum, let maximum, _) = message.request {
            guard state.withLockedValue({ $0.negotiated }) == nil else {
                // docs/IPC.md section 4: the version is fixed for the connection once negotiated.
                outbox.send(.reply(id: id, .failure(IPCError(.invalidArgument, "hello was already completed on this connection"))))
                return
            }
            guard let version = IPCVersion.negotiate(clientMin: minimum, clientMax: maximum) else {
                let supported = IPCVersion.supported
                // docs/IPC.md section 4: the app may try again with another range; the watchdog
                // still closes a connection that has not completed hello within the client timeout.
                outbox.send(.reply(id: id, .failure(IPCError(.unsupportedVersion, "streamd speaks versions \(supported.lowerBound)...\(supported.upperBound)"))))
                return
            }
            state.withLockedValue { $0.negotiated = version }
            outbox.send(.reply(id: id, .success(.hello(version: version, daemon: daemonVersion, instance: context.instance, features: Self.features))))
            return
        }
        guard state.withLockedValue({ $0.negotiated }) != nil else {
            // docs/IPC.md section 4: the connection stays open until hello succeeds (or the watchdog closes it).
            outbox.send(.reply(id: id, .failure(IPCError(.helloRequired, "send hello first"))))
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
            outbox.send(.reply(id: id, .failure(error)))
            return
        }
        if case .write(let name, let offset, let data) = message.request {
            // The common write needs no task: the host answers it once it is durable.
            let started = await context.host.startWrite(name: name, offset: offset, data: data) { result in
                state.withLockedValue { $0.inFlight -= 1 }
                outbox.send(.reply(id: id, result.map { .written(accepted: $0.accepted, offset: $0.offset) }))
            }
            if started { return }
        }
        requests.addTask {
            let result = await perform(message.request, outbox: outbox)
            state.withLockedValue { $0.inFlight -= 1 }
            outbox.send(.reply(id: id, result))
        }
    }

    /// Carries out one request.
    private func perform(_ request: IPCRequest, outbox: Outbox) async -> Result<IPCReply, IPCError> {
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
                try await subscribe(names.map { Set($0.map(\.rawValue)) }, outbox: outbox)
                return .success(.ok)
            case .daemonStatus:
                return .success(.daemonStatus(await context.status()))
            }
        } catch {
            return .failure(error)
        }
    }

    private func subscribe(_ names: Set<String>?, outbox: Outbox) async throws(IPCError) {
        let state = outbox.state
        guard state.withLockedValue({ $0.subscription }) == nil else {
            throw IPCError(.invalidArgument, "this connection is already subscribed")
        }
        let (id, events) = await context.host.subscribe(names: names)
        state.withLockedValue { $0.subscription = id }
        Task {
            for await event in events {
                let admitted = state.withLockedValue { $0.queuedFrames < Self.maxQueuedFramesForEvents }
                if admitted { outbox.send(.event(event)) }
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
