import CBOR
import Logging
import NIOCore
import NIOPosix
import ThinClient
import ThinWire

#if canImport(Glibc)
import Glibc
#endif

/// An ordered, awaitable queue fed from one producer (a test helper).
actor Inbox<Element: Sendable> {
    private var buffered: [Element] = []
    private var head = 0
    private var waiter: CheckedContinuation<Element?, Never>?
    private var finished = false

    func push(_ element: Element) {
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: element)
        } else {
            buffered.append(element)
        }
    }

    func finish() {
        finished = true
        waiter?.resume(returning: nil)
        waiter = nil
    }

    /// The next element, or `nil` once the producer finished and everything was read.
    func next() async -> Element? {
        if head < buffered.count {
            defer { head += 1 }
            return buffered[head]
        }
        if finished { return nil }
        return await withCheckedContinuation { waiter = $0 }
    }

    /// Feeds the inbox from an `AsyncStream`, preserving order.
    nonisolated func drain(_ stream: AsyncStream<Element>) {
        Task {
            for await element in stream { await self.push(element) }
            await self.finish()
        }
    }
}

/// What a fake daemon connection received: a decoded message (with its raw CBOR body), or a
/// frame it could not decode.
enum Received: Sendable {
    case message(ThinMessage, body: [UInt8])
    case malformed(String)
}

/// A scripted stand-in for kpclientd, for protocol edge cases the simulator does not produce
/// (oversized or garbage frames, silent daemons, exact replay bytes).
final class FakeDaemon: Sendable {
    let server: any Channel
    let address: DialAddress
    private let accepted: Inbox<FakeConnection>

    private init(server: any Channel, address: DialAddress, accepted: Inbox<FakeConnection>) {
        self.server = server
        self.address = address
        self.accepted = accepted
    }

    enum Listen {
        case tcp
        case unix(path: String)
        case abstract(name: String)
    }

    static func start(_ listen: Listen = .tcp) async throws -> FakeDaemon {
        let (stream, continuation) = AsyncStream.makeStream(of: FakeConnection.self)
        let accepted = Inbox<FakeConnection>()
        accepted.drain(stream)
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let (messages, sink) = AsyncStream.makeStream(of: Received.self)
                    try channel.pipeline.syncOperations.addHandler(FrameCollector(sink: sink))
                    continuation.yield(FakeConnection(channel: channel, messages: messages))
                }
            }
        switch listen {
        case .tcp:
            let server = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
            let port = server.localAddress?.port ?? 0
            return FakeDaemon(server: server, address: .tcp(host: "127.0.0.1", port: port, network: .tcp4), accepted: accepted)
        case .unix(let path):
            unlink(path)
            let server = try await bootstrap.bind(unixDomainSocketPath: path).get()
            return FakeDaemon(server: server, address: .unix(path: path), accepted: accepted)
        case .abstract(let name):
            let fd = try listenAbstract(name: name)
            let server = try await bootstrap.withBoundSocket(fd).get()
            return FakeDaemon(server: server, address: .abstract(name: name), accepted: accepted)
        }
    }

    /// The next accepted connection.
    func nextConnection() async throws -> FakeConnection {
        guard let connection = await accepted.next() else { throw FakeDaemonError("the fake daemon stopped") }
        return connection
    }

    func stop() async {
        try? await server.close()
    }

    /// A client configuration dialling this daemon, with test-friendly timeouts.
    func clientConfiguration() -> ThinClientConfiguration {
        var configuration = ThinClientConfiguration(dial: address)
        configuration.handshakeTimeout = .seconds(10)
        configuration.logger.logLevel = .error
        configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(200))
        return configuration
    }

    /// Binds and listens on an abstract socket with the exact address length, as Go does.
    private static func listenAbstract(name: String) throws -> CInt {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FakeDaemonError("socket() failed") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes: [UInt8] = [0] + Array(name.utf8)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: nameBytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + nameBytes.count)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            close(fd)
            throw FakeDaemonError("cannot listen on @\(name) (errno \(errno))")
        }
        return fd
    }
}

struct FakeDaemonError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One client connection of a ``FakeDaemon``.
final class FakeConnection: Sendable {
    let channel: any Channel
    private let inbox = Inbox<Received>()

    init(channel: any Channel, messages: AsyncStream<Received>) {
        self.channel = channel
        inbox.drain(messages)
    }

    /// The next frame from the client; `nil` once the client closed the connection.
    func next() async -> Received? { await inbox.next() }

    /// The next decoded message; throws on a malformed frame or a closed connection.
    func nextMessage() async throws -> (ThinMessage, body: [UInt8]) {
        switch await next() {
        case .message(let message, let body): return (message, body)
        case .malformed(let reason): throw FakeDaemonError("malformed frame from the client: \(reason)")
        case nil: throw FakeDaemonError("the client closed the connection")
        }
    }

    /// The next message, which must have `key`.
    @discardableResult
    func expect(_ key: String) async throws -> ThinMessage {
        let (message, _) = try await nextMessage()
        guard message.key == key else { throw FakeDaemonError("expected \(key), got \(message.key)") }
        return message
    }

    /// Waits until the client closes the connection, skipping what it still sends.
    func waitUntilClosed() async {
        while await next() != nil {}
    }

    func send(_ message: ThinMessage) {
        sendRaw(ThinFrame.encode(message.value))
    }

    func send(value: CBORValue) {
        sendRaw(ThinFrame.encode(value))
    }

    func sendRaw(_ bytes: [UInt8]) {
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }

    static let instanceToken: [UInt8] = Array(0..<16)

    /// A complete `connection_status_event`.
    static func status(isConnected: Bool = true, maxPlaintextPayloadLength: Int = 1549) -> ThinMessage {
        let geometry = PigeonholeGeometry.simulatedPair(maxPlaintextPayloadLength: maxPlaintextPayloadLength)
        return ThinMessage(
            ThinKey.Event.connectionStatus,
            [
                (ThinKey.Field.isConnected, .bool(isConnected)),
                (ThinKey.Field.err, .null),
                (ThinKey.Field.instanceToken, .bytes(instanceToken)),
                (ThinKey.Field.sphinxGeometry, geometry.sphinx.cborValue),
                (ThinKey.Field.pigeonholeGeometry, geometry.pigeonhole.cborValue),
            ]
        )
    }

    /// Runs the daemon's side of the handshake and returns the client's session token.
    ///
    /// - Parameter beforeReply: frames sent between the client's token and the daemon's reply.
    @discardableResult
    func handshake(isConnected: Bool = true, resumed: Bool = false, beforeReply: [CBORValue] = []) async throws -> [UInt8] {
        send(Self.status(isConnected: isConnected))
        send(ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .null)]))
        let token = try await expect(ThinKey.Request.sessionToken)
        for value in beforeReply { send(value: value) }
        send(ThinMessage(ThinKey.Event.sessionTokenReply, [(ThinKey.Field.appID, .bytes(Array(repeating: 7, count: 16))), (ThinKey.Field.resumed, .bool(resumed))]))
        return try token.fields.bytes(ThinKey.Field.clientInstanceToken, length: 16)
    }

    /// Replies to `request` with `<key>_reply`, its query ID and extra fields.
    func reply(to request: ThinMessage, _ fields: [(String, CBORValue)]) throws {
        let queryID = try request.fields.queryID()
        send(ThinMessage(ThinKey.Reply.of(request.key), [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
    }
}

/// Decodes the client's frames with ThinWire and forwards them; closes on a bad frame.
private final class FrameCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private var decoder = ThinFrameDecoder()
    private let sink: AsyncStream<Received>.Continuation

    init(sink: AsyncStream<Received>.Continuation) {
        self.sink = sink
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        decoder.append(buffer.readableBytesView)
        do {
            while let body = try decoder.nextFrameBody() {
                do {
                    sink.yield(.message(try ThinMessage(frameBody: body), body: body))
                } catch {
                    sink.yield(.malformed(error.description))
                }
            }
        } catch {
            sink.yield(.malformed(error.description))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        sink.finish()
        context.fireChannelInactive()
    }
}
