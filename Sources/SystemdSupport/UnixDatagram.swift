#if canImport(Glibc)
import Glibc
#endif

/// Sends datagrams on an `AF_UNIX` `SOCK_DGRAM` socket to a path or an abstract name (`@name`).
///
/// The descriptor is opened once and closed on deinit.
final class UnixDatagramSender: Sendable {
    let descriptor: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t
    /// Whether a send may wait (up to the socket's send timeout) while the receiver's queue is full.
    private let waits: Bool

    /// The longest socket path (`sun_path` minus its terminator).
    static let maxPathLength = 107

    /// Opens a socket for sending to `path`; a leading `@` names an abstract socket.
    ///
    /// - Parameter waitUpTo: how long a send may wait while the receiver's queue is full (a busy
    ///   journald); `nil`: never wait (the service manager's notifications must not block).
    init(path: String, sendBuffer: Int32? = nil, waitUpTo wait: Duration? = nil) throws(SystemdError) {
        let bytes = Array(path.utf8)
        guard !bytes.isEmpty, bytes.count <= Self.maxPathLength else {
            throw SystemdError(.invalidEnvironment, "socket path is empty or longer than \(Self.maxPathLength) bytes")
        }
        guard bytes.first == UInt8(ascii: "/") || bytes.first == UInt8(ascii: "@") else {
            throw SystemdError(.invalidEnvironment, "socket path must be absolute or start with @")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
            if bytes[0] == UInt8(ascii: "@") { raw[0] = 0 }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // An abstract name has no terminator; a path gets one.
        let length = pathOffset + bytes.count + (bytes[0] == UInt8(ascii: "@") ? 0 : 1)
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemdError(.socketFailed, "socket(): \(String(cString: strerror(errno)))") }
        if var size = sendBuffer {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        if let wait {
            let microseconds = max(1, wait.components.seconds * 1_000_000 + wait.components.attoseconds / 1_000_000_000_000)
            var timeout = timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
            _ = setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        waits = wait != nil
        self.descriptor = descriptor
        self.address = address
        self.addressLength = socklen_t(length)
    }

    deinit { close(descriptor) }

    /// Sends one datagram; waits only if the sender was opened with `waitUpTo`.
    func send(_ bytes: [UInt8]) throws(SystemdError) {
        let flags = Int32(MSG_NOSIGNAL) | (waits ? 0 : Int32(MSG_DONTWAIT))
        var address = self.address
        let result: Int = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress in
                    var sent: Int
                    repeat {
                        sent = sendto(descriptor, buffer.baseAddress, buffer.count, flags, socketAddress, addressLength)
                    } while sent < 0 && errno == EINTR
                    return sent
                }
            }
        }
        guard result >= 0 else {
            let code = errno
            throw SystemdError(code == EMSGSIZE ? .tooLarge : .sendFailed, "sendto(): \(String(cString: strerror(code)))")
        }
    }
}
