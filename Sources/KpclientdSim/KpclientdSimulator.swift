#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBOR
import Logging
import NIOCore
import NIOPosix
import ThinWire

/// A faithful in-process double of `kpclientd`, serving the thin-client protocol over TCP, a Unix
/// socket or a Linux abstract socket.
///
/// ```swift
/// var configuration = KpclientdSimConfiguration()
/// configuration.listen = .tcp(host: "127.0.0.1", port: 0)   // ephemeral port
/// let sim = try await KpclientdSimulator.start(configuration)
/// print(sim.listenAddress)                                   // tcp:127.0.0.1:41234
/// await sim.disconnectAllClients()                           // clients reconnect and resume
/// await sim.shutdown()                                       // shutdown_event, then close
/// ```
///
/// Behaviour follows the reference notes: the ordered handshake, session tokens with a grace
/// period, one Pigeonhole box store shared by every connection, the ARQ and copy semantics, a
/// per-connection mixnet queue of 16 released by a Poisson scheduler, and backpressure (a
/// connection whose queue is full is not read from). With a send rate (for example from
/// ``KpclientdSimProfile``) the network model is on: every packet costs a send tick, resends
/// first, reads of empty boxes retry on ticks against the couriers' dedup caches, unanswered
/// packets are retransmitted after the round trip plus the slop, and couriers may leave
/// (``departCourier()``), hanging the operations bound to them. Against a client exhausting it, connections
/// are bounded, handshakes and incomplete frames time out, and incomplete frames of all
/// connections share one byte budget (see ``KpclientdSimConfiguration``).
public final class KpclientdSimulator: Sendable {
    /// The address actually bound (with the real port when port 0 was requested).
    public let listenAddress: SimListenAddress
    /// The configuration the simulator runs with.
    public let configuration: KpclientdSimConfiguration
    /// The Sphinx geometry sent in `connection_status_event`.
    public let sphinxGeometry: SphinxGeometry
    /// The Pigeonhole geometry sent in `connection_status_event`.
    public let pigeonholeGeometry: PigeonholeGeometry

    private let core: SimCore
    private let budget: InboundBudget
    private let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let serveTask: Task<Void, Never>

    private init(
        listenAddress: SimListenAddress, configuration: KpclientdSimConfiguration, core: SimCore, budget: InboundBudget,
        server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, serveTask: Task<Void, Never>
    ) {
        self.listenAddress = listenAddress
        self.configuration = configuration
        self.core = core
        self.budget = budget
        self.server = server
        self.serveTask = serveTask
        self.sphinxGeometry = core.sphinxGeometry
        self.pigeonholeGeometry = core.pigeonholeGeometry
    }

    /// Starts a simulator: loads the state file (if any), binds the listener and begins serving.
    ///
    /// - Throws: ``SimConfigurationError`` for invalid settings, ``SimStateError`` for an
    ///   unusable state file, or ``SimListenError`` (naming the address and the cause) when
    ///   the listener cannot be bound.
    public static func start(_ configuration: KpclientdSimConfiguration) async throws -> KpclientdSimulator {
        try configuration.validate()
        let core = try SimCore(configuration: configuration)
        let group = MultiThreadedEventLoopGroup.singleton
        let isTCP: Bool
        if case .tcp = configuration.listen { isTCP = true } else { isTCP = false }
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
        if isTCP {
            bootstrap = bootstrap.childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
        }
        let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                    wrappingChannelSynchronously: channel,
                    configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 4))
                )
            }
        }
        let server: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
        let bound: SimListenAddress
        do {
            switch configuration.listen {
            case .tcp(let host, let port):
                server = try await bootstrap.bind(host: host, port: port, childChannelInitializer: initializer)
                bound = .tcp(host: host, port: server.channel.localAddress?.port ?? port)
            case .unix(let path):
                server = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true, childChannelInitializer: initializer)
                bound = .unix(path: path)
            case .abstract(let name):
                let fd = try AbstractSocket.listen(name: name)
                server = try await bootstrap.bind(fd, childChannelInitializer: initializer)
                bound = .abstract(name: name)
            }
        } catch {
            throw SimListenError.wrapping(error, address: "\(configuration.listen)")
        }
        await core.startBackgroundLoops()
        let budget = InboundBudget(limit: configuration.maxBufferedInboundBytes)
        let serveTask = Task<Void, Never> {
            _ = try? await server.executeThenClose { inbound in
                await withDiscardingTaskGroup { group in
                    do {
                        for try await connection in inbound {
                            group.addTask { await Self.serve(connection, core: core, budget: budget) }
                        }
                    } catch {
                        configuration.logger.debug("listener stopped", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
        configuration.logger.info("kpclientd-sim listening", metadata: ["address": "\(bound)"])
        return KpclientdSimulator(listenAddress: bound, configuration: configuration, core: core, budget: budget, server: server, serveTask: serveTask)
    }

    private static func serve(
        _ connection: NIOAsyncChannel<ByteBuffer, ByteBuffer>,
        core: SimCore, budget: InboundBudget
    ) async {
        let configuration = core.configuration
        let logger = configuration.logger
        let peer = connection.channel.remoteAddress.map { "\($0)" } ?? "unknown"
        let (frames, continuation) = AsyncStream<[UInt8]>.makeStream()
        let sink = ConnectionSink(continuation: continuation)
        guard let id = await core.connect(sink: sink) else {
            let reason = await core.noteRefusal()
            logger.debug("connection refused", metadata: ["peer": "\(peer)", "reason": "\(reason)"])
            try? await connection.channel.close()
            return
        }
        let progress = ReadProgress()
        do {
            try await connection.executeThenClose { inbound, outbound in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await frame in frames {
                            try await outbound.write(ByteBuffer(bytes: frame))
                            await core.didWrite(id, bytes: frame.count)
                        }
                    }
                    group.addTask {
                        var decoder = ThinFrameDecoder()
                        var held = 0
                        defer { _ = budget.adjust(by: -held) }
                        readLoop: for try await buffer in inbound {
                            decoder.append(buffer.readableBytesView)
                            while let value = try decoder.nextValue() {
                                progress.frameDecoded()
                                guard await core.receive(id, value) else { break readLoop }
                            }
                            let buffered = decoder.bufferedByteCount
                            progress.readFinished(holdsPartialFrame: buffered > 0)
                            let withinBudget = budget.adjust(by: buffered - held)
                            held = buffered
                            guard withinBudget || buffered == 0 else {
                                throw ConnectionGuardError(description: "incomplete inbound frames of all connections exceed \(budget.limit) bytes")
                            }
                        }
                    }
                    group.addTask {
                        // A quarter of the shorter timeout, between 50 ms and 1 s.
                        let tick = max(.milliseconds(50), min(min(configuration.handshakeTimeout, configuration.frameTimeout) / 4, .seconds(1)))
                        while true {
                            try await Task.sleep(for: tick)
                            if let reason = progress.violation(handshakeTimeout: configuration.handshakeTimeout, frameTimeout: configuration.frameTimeout) {
                                throw ConnectionGuardError(description: reason)
                            }
                        }
                    }
                    defer { group.cancelAll() }
                    try await group.next()
                }
            }
        } catch {
            // Oversized or undecodable frames, timeouts, resets and write failures all end the connection.
            if error is ConnectionGuardError { await core.noteGuardClosed() }
            logger.debug("closing connection", metadata: ["connection": "\(id)", "reason": "\(error)"])
        }
        await core.disconnected(id)
    }

    /// Drops every client connection without `shutdown_event`, as a crashing link would; sessions
    /// that sent a token stay resumable for the grace period.
    public func disconnectAllClients() async {
        await core.disconnectAll(reason: "requested")
    }

    /// Changes the mixnet release rate; `nil` releases everything queued at once.
    public func setRate(_ rate: Double?) async {
        await core.setRate(rate)
    }

    /// Makes one courier, chosen at random, leave the network now, as `--courier-churn` does:
    /// a fresh courier takes its place in a new PKI document pushed to every client, and the
    /// ARQ and copy operations bound to the departed one never complete (until cancelled).
    ///
    /// - Returns: whether a courier left (not once shutdown has begun).
    @discardableResult
    public func departCourier() async -> Bool {
        await core.departCourier() != nil
    }

    /// ARQ operations that hold a task now (parked reads hold none), for tests.
    func arqTasks() async -> Int { await core.arqTaskCount() }

    /// A snapshot of the simulator's counters (connections, queues, and the network model's
    /// ticks, retransmissions, hung operations and overflows).
    public func statistics() async -> KpclientdSimStatistics {
        var statistics = await core.statistics()
        statistics.bufferedInboundBytes = budget.bytesInUse
        return statistics
    }

    /// The daemon instance token sent in `connection_status_event` (fixed for the simulator's life).
    public var instanceToken: [UInt8] { core.instanceToken }

    /// The `destination_id_hash` of the echo (and courier) service node.
    public var echoServiceIdentityHash: [UInt8] { core.pki.serviceIdentityHash }

    /// Sends `shutdown_event` to every connection, closes them and the listener, and saves the state file.
    public func shutdown() async {
        await core.shutdown()
        try? await server.channel.close()
        await serveTask.value
        if case .unix(let path) = listenAddress { unlink(path) }
    }
}

/// A listening Linux abstract Unix socket bound with its exact name length, so that clients
/// connecting to `\0name` (as the Python thin client does) match.
enum AbstractSocket {
    static func listen(name: String) throws -> NIOBSDSocket.Handle {
        #if os(Linux)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SimListenError.from(errno: errno, address: "@\(name)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes = [UInt8](name.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard nameBytes.count + 1 <= capacity else {
            close(fd)
            throw SimConfigurationError("abstract socket name too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { path in
            path[0] = 0
            for (i, b) in nameBytes.enumerated() { path[i + 1] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + 1 + nameBytes.count)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw SimListenError.from(errno: e, address: "@\(name)")
        }
        guard Glibc.listen(fd, 256) == 0 else {
            let e = errno
            close(fd)
            throw SimListenError.from(errno: e, address: "@\(name)")
        }
        return fd
        #else
        throw SimConfigurationError("abstract sockets exist only on Linux")
        #endif
    }
}
