import IPC
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// The app socket: accepts connections, checks the peer's uid, and serves each connection.
///
/// Each connection is independent: a malformed or oversized frame, a stalled half frame or a
/// missing `hello` closes only that connection.
final class AppServer: Sendable {
    private let channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>
    private let context: AppConnection.Context
    private let connections = NIOLockedValueBox(0)
    /// The path the server listens on, if it bound one itself.
    let path: String?

    private init(channel: NIOAsyncChannel<NIOAsyncChannel<ByteBuffer, ByteBuffer>, Never>, context: AppConnection.Context, path: String?) {
        self.channel = channel
        self.context = context
        self.path = path
    }

    private static let initializer: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<ByteBuffer, ByteBuffer>> = { channel in
        channel.eventLoop.makeCompletedFuture {
            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(
                wrappingChannelSynchronously: channel,
                configuration: .init(backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8)))
        }
    }

    /// Binds the socket path (0600, in a 0700 directory), replacing a stale socket file.
    static func bind(path: String, context: AppConnection.Context) async throws -> AppServer {
        try SocketPath.prepare(path)
        let previous = umask(0o177)
        defer { umask(previous) }
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false, childChannelInitializer: initializer)
        chmod(path, 0o600)
        return AppServer(channel: channel, context: context, path: path)
    }

    /// Adopts a listening socket passed by systemd (socket activation).
    static func adopt(descriptor: Int32, context: AppConnection.Context) async throws -> AppServer {
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(descriptor, cleanupExistingSocketFile: false, childChannelInitializer: initializer)
        return AppServer(channel: channel, context: context, path: nil)
    }

    /// The number of app connections open now.
    var connectionCount: Int { connections.withLockedValue { $0 } }

    /// Accepts and serves connections until ``close()``.
    func run() async {
        let logger = context.logger
        let maxConnections = context.configuration.maxConnections
        _ = try? await channel.executeThenClose { inbound in
            await withDiscardingTaskGroup { group in
                do {
                    for try await connection in inbound {
                        let admitted = connections.withLockedValue { count in
                            guard count < maxConnections else { return false }
                            count += 1
                            return true
                        }
                        group.addTask { [self] in
                            guard admitted else {
                                logger.warning("refused an app connection: too many connections", metadata: ["max": "\(maxConnections)"])
                                await AppConnection.refuse(connection, IPCError(.busy, "streamd already serves \(maxConnections) connections"))
                                return
                            }
                            await AppConnection(connection: connection, context: context).serve()
                            connections.withLockedValue { $0 -= 1 }
                        }
                    }
                } catch {
                    logger.debug("app listener stopped", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// Stops accepting connections; a bound socket file is removed.
    func close() async {
        try? await channel.channel.close()
        if let path { unlink(path) }
    }
}
