import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A raw byte-stream connection to kpclientd; framing happens above it.
typealias DaemonChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

/// Opens byte-stream connections to kpclientd over TCP, Unix or abstract Unix sockets.
enum Dialer {
    /// Connects to `address` and wraps the channel for async use.
    static func connect(to address: DialAddress, group: any EventLoopGroup) async throws -> DaemonChannel {
        switch address {
        case .tcp(let host, let port, let network):
            let bootstrap = ClientBootstrap(group: group)
                .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                .channelOption(.socketOption(.so_keepalive), value: 1)
                .channelOption(tcpOption(TCP_KEEPIDLE), value: 10)
                .channelOption(tcpOption(TCP_KEEPINTVL), value: 10)
                .channelOption(tcpOption(TCP_KEEPCNT), value: 3)
                .channelOption(tcpOption(tcpUserTimeoutOption), value: 30_000)
            switch network {
            case .tcp:
                return try await bootstrap.connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture { try DaemonChannel(wrappingChannelSynchronously: channel) }
                }
            case .tcp4, .tcp6:
                let family = network == .tcp4 ? AF_INET : AF_INET6
                let socketAddress = try await resolve(host: host, port: port, family: family)
                return try await bootstrap.connect(to: socketAddress) { channel in
                    channel.eventLoop.makeCompletedFuture { try DaemonChannel(wrappingChannelSynchronously: channel) }
                }
            }
        case .unix(let path):
            return try await ClientBootstrap(group: group).connect(unixDomainSocketPath: path) { channel in
                channel.eventLoop.makeCompletedFuture { try DaemonChannel(wrappingChannelSynchronously: channel) }
            }
        case .abstract(let name):
            let fd = try await NIOThreadPool.singleton.runIfActive { try connectAbstract(name: name) }
            return try await ClientBootstrap(group: group).withConnectedSocket(fd) { channel in
                channel.eventLoop.makeCompletedFuture { try DaemonChannel(wrappingChannelSynchronously: channel) }
            }
        }
    }

    private static func tcpOption(_ name: Int32) -> ChannelOptions.Types.SocketOption {
        ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: name))
    }

    /// `TCP_USER_TIMEOUT` (Linux).
    private static let tcpUserTimeoutOption: Int32 = 18

    /// Resolves `host` to an address of one family (`tcp4` / `tcp6`).
    private static func resolve(host: String, port: Int, family: Int32) async throws -> SocketAddress {
        try await NIOThreadPool.singleton.runIfActive {
            var hints = addrinfo()
            hints.ai_family = family
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            let status = getaddrinfo(host, String(port), &hints, &result)
            guard status == 0, let first = result else {
                throw DialError(message: "cannot resolve \(host) for \(family == AF_INET ? "tcp4" : "tcp6") (getaddrinfo \(status))")
            }
            defer { freeaddrinfo(result) }
            var entry: UnsafeMutablePointer<addrinfo>? = first
            while let current = entry {
                if let sockaddrPointer = current.pointee.ai_addr {
                    if current.pointee.ai_family == AF_INET {
                        let address = sockaddrPointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                        return SocketAddress(address, host: host)
                    }
                    if current.pointee.ai_family == AF_INET6 {
                        let address = sockaddrPointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                        return SocketAddress(address, host: host)
                    }
                }
                entry = current.pointee.ai_next
            }
            throw DialError(message: "no usable address for \(host)")
        }
    }

    /// Connects a blocking Unix socket to the abstract name `"\0" + name` with the exact address
    /// length (as Go's `net.ResolveUnixAddr("@name")` binds it), then makes it non-blocking.
    private static func connectAbstract(name: String) throws -> CInt {
        #if os(Linux)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw DialError(message: "socket() failed (errno \(errno))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let nameBytes: [UInt8] = [0] + Array(name.utf8)
        guard nameBytes.count <= MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw DialError(message: "abstract socket name is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: nameBytes) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + nameBytes.count)
        var result: Int32
        repeat {
            result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
            }
        } while result < 0 && errno == EINTR
        guard result == 0 else {
            let code = errno
            close(fd)
            throw DialError(message: "connect to abstract socket @\(name) failed (errno \(code))")
        }
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        return fd
        #else
        throw DialError(message: "abstract Unix sockets exist on Linux only")
        #endif
    }
}

/// A failure to open the byte stream (resolution or connect); reported as `notConnected`.
struct DialError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
