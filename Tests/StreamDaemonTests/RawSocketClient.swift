import CBOR
import IPC

#if canImport(Glibc)
import Glibc
#endif

/// A minimal app-socket client on plain POSIX calls, for sending bytes no well-behaved client
/// would: garbage, bad prefixes, half frames, hand-built CBOR.
///
/// Reads never block a thread: the socket is non-blocking and waiting is `Task.sleep`, so the
/// daemon running in the same process keeps its threads.
final class RawSocketClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let descriptor: Int32
    private var buffer: [UInt8] = []
    private var nextID: UInt64 = 1000
    /// Replies that came while another was awaited: concurrent requests may be answered in any order.
    private var earlyReplies: [UInt64: Result<IPCReply, IPCError>] = [:]
    private(set) var peerClosed = false

    init(path: String) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw Failure(description: "path too long") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            throw Failure(description: "connect: errno \(code)")
        }
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    deinit { close(descriptor) }

    /// Shuts both directions down, as an app that goes away does.
    func shutdown() { _ = Glibc.shutdown(descriptor, Int32(SHUT_RDWR)) }

    /// Sends raw bytes; `false` if the daemon already closed the connection.
    @discardableResult
    func send(_ bytes: [UInt8]) async -> Bool {
        var sent = 0
        while sent < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count > 0 {
                sent += count
            } else if count < 0, errno == EAGAIN || errno == EINTR {
                try? await Task.sleep(for: .milliseconds(2))
            } else {
                return false
            }
        }
        return true
    }

    /// Sends a hand-built map as one frame.
    @discardableResult
    func send(map pairs: [(String, CBORValue)]) async -> Bool {
        await send(IPCFraming.frame(CBORValue.textMap(pairs).encoded()))
    }

    /// Sends a request and returns its id.
    @discardableResult
    func send(_ request: IPCRequest) async -> UInt64 {
        nextID += 1
        await send(IPCRequestMessage(id: nextID, request: request).framed())
        return nextID
    }

    /// The next message from the daemon, or `nil` if it closed the connection (or nothing came in time).
    func next(timeout: Duration = .seconds(10)) async throws -> IPCServerMessage? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if buffer.count >= 4 {
                let length = buffer[0..<4].reduce(0) { $0 << 8 | Int($1) }
                if buffer.count >= 4 + length {
                    let payload = Array(buffer[4..<(4 + length)])
                    buffer.removeFirst(4 + length)
                    return try IPCServerMessage(decoding: payload)
                }
            }
            if peerClosed || ContinuousClock.now > deadline { return nil }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                buffer += chunk[..<count]
            } else if count == 0 {
                peerClosed = true
            } else if errno == EAGAIN || errno == EINTR {
                try await Task.sleep(for: .milliseconds(5))
            } else {
                peerClosed = true  // ECONNRESET: closed as well
            }
        }
    }

    /// The reply to request `id`, skipping events and keeping other replies for their own `reply(to:)`.
    func reply(to id: UInt64, timeout: Duration = .seconds(10)) async throws -> Result<IPCReply, IPCError> {
        if let early = earlyReplies.removeValue(forKey: id) { return early }
        while let message = try await next(timeout: timeout) {
            switch message {
            case .reply(let replyID, let result) where replyID == id: return result
            case .reply(let replyID, let result): earlyReplies[replyID] = result
            case .goodbye(let error): throw Failure(description: "goodbye while waiting for reply \(id): \(error)")
            default: continue
            }
        }
        throw Failure(description: peerClosed ? "connection closed while waiting for reply \(id)" : "no reply to \(id) in time")
    }

    /// The error of a request that must fail.
    func error(of request: IPCRequest) async throws -> IPCError {
        let id = await send(request)
        switch try await reply(to: id) {
        case .success(let reply): throw Failure(description: "\(request.operation) succeeded: \(reply.kind)")
        case .failure(let error): return error
        }
    }

    /// Sends `hello` for version 1 and checks the reply.
    func hello() async throws {
        let id = await send(.hello(minVersion: 1, maxVersion: 1, client: "raw-test"))
        guard case .success(.hello(let version, _, _, _)) = try await reply(to: id), version == 1 else {
            throw Failure(description: "hello failed")
        }
    }

    /// Waits for a goodbye followed by the daemon closing the connection; returns the goodbye's error.
    func goodbyeAndClose(timeout: Duration = .seconds(10)) async throws -> IPCError? {
        var goodbye: IPCError?
        while let message = try await next(timeout: timeout) {
            if case .goodbye(let error) = message { goodbye = error }
        }
        return peerClosed ? goodbye : nil
    }

    /// Whether the daemon closed the connection within `timeout` (messages before are skipped).
    func isClosed(within timeout: Duration) async throws -> Bool {
        while try await next(timeout: timeout) != nil {}
        return peerClosed
    }
}
