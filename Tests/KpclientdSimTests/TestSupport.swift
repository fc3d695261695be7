import CBOR
import Foundation
import KpclientdSim
import Logging
import Testing
import ThinWire

#if canImport(Glibc)
import Glibc
#endif

/// A test failure outside an `#expect`.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum TestSupport {
    /// The repository root, found from this file's path.
    static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A simulator configuration on an ephemeral loopback TCP port.
    static func configuration() -> KpclientdSimConfiguration {
        var configuration = KpclientdSimConfiguration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        var logger = Logger(label: "kpclientd-sim-test")
        logger.logLevel = .critical
        configuration.logger = logger
        return configuration
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("kpclientd-sim-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Runs `body` with a started simulator, shutting it down afterwards.
    static func withSimulator<T>(
        _ configuration: KpclientdSimConfiguration = configuration(),
        _ body: (KpclientdSimulator) async throws -> T
    ) async throws -> T {
        let sim = try await KpclientdSimulator.start(configuration)
        do {
            let result = try await body(sim)
            await sim.shutdown()
            return result
        } catch {
            await sim.shutdown()
            throw error
        }
    }

    /// Polls `condition` every 20 ms until it holds or `timeout` passes.
    static func eventually(
        _ what: String, timeout: Duration = .seconds(20), _ condition: () async throws -> Bool
    ) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw TestFailure("timed out waiting for \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    static func random(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255) } }
}

/// A minimal blocking socket client speaking raw frames, for tests of the wire behaviour.
final class RawClient {
    let fd: Int32
    private var decoder = ThinFrameDecoder()
    /// Frames read while looking for something else.
    private var backlog: [ThinMessage] = []
    private(set) var rawValues: [CBORValue] = []

    init(_ address: SimListenAddress) throws {
        switch address {
        case .tcp(let host, let port):
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = in_port_t(UInt16(port).bigEndian)
            inet_pton(AF_INET, host, &addr.sin_addr)
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw TestFailure("connect failed: errno \(errno)") }
        case .unix(let path):
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_un()
            addr.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
            let rc = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard rc == 0 else { throw TestFailure("connect failed: errno \(errno)") }
        case .abstract:
            throw TestFailure("abstract sockets are exercised through the Python client")
        }
    }

    deinit { close(fd) }

    func sendRaw(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw TestFailure("send failed: errno \(errno)") }
            offset += n
        }
    }

    func send(_ message: ThinMessage) throws { try sendRaw(message.frame) }

    func send(_ value: CBORValue) throws { try sendRaw(ThinFrame.encode(value)) }

    /// Reads the next message; `nil` at end of stream. Throws on timeout or a decode error.
    func next(timeout: Duration = .seconds(10)) throws -> ThinMessage? {
        if !backlog.isEmpty { return backlog.removeFirst() }
        return try readMessage(timeout: timeout)
    }

    private func readMessage(timeout: Duration) throws -> ThinMessage? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = try decoder.nextValue() {
                rawValues.append(value)
                return try ThinMessage(decoding: value)
            }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw TestFailure("timed out reading a frame") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(1, remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000))
            let ready = poll(&pfd, 1, ms)
            if ready == 0 { continue }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 65536, 0) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { return nil }
                throw TestFailure("recv failed: errno \(errno)")
            }
            decoder.append(buffer[0..<n])
        }
    }

    /// Reads until a message with `key` (and, if given, `query_id`) arrives; others are kept.
    func waitFor(_ key: String, queryID: [UInt8]? = nil, timeout: Duration = .seconds(10)) throws -> ThinMessage {
        if let i = backlog.firstIndex(where: { $0.key == key && (queryID == nil || (try? $0.fields.queryID()) == queryID) }) {
            return backlog.remove(at: i)
        }
        while true {
            guard let message = try readMessage(timeout: timeout) else { throw TestFailure("connection closed while waiting for \(key)") }
            if message.key == key && (queryID == nil || (try? message.fields.queryID()) == queryID) { return message }
            backlog.append(message)
        }
    }

    /// Reads and discards until the peer closes; `false` on timeout.
    func waitForClose(timeout: Duration = .seconds(10)) -> Bool {
        do {
            while try readMessage(timeout: timeout) != nil {}
            return true
        } catch {
            return error is TestFailure && !"\(error)".contains("timed out")
        }
    }

    /// Completes the handshake: status, PKI document, then (optionally) the session token.
    @discardableResult
    func handshake(token: [UInt8]? = nil) throws -> (status: ThinMessage, document: ThinMessage, reply: ThinMessage?) {
        let status = try waitFor(ThinKey.Event.connectionStatus)
        let document = try waitFor(ThinKey.Event.newPKIDocument)
        guard let token else { return (status, document, nil) }
        try send(ThinMessage(ThinKey.Request.sessionToken, [(ThinKey.Field.clientInstanceToken, .bytes(token))]))
        return (status, document, try waitFor(ThinKey.Event.sessionTokenReply))
    }

    /// Sends a query-correlated request and waits for its reply.
    func request(_ key: String, _ fields: [(String, CBORValue)], timeout: Duration = .seconds(10)) throws -> ThinFields {
        let queryID = TestSupport.random(16)
        try send(ThinMessage(key, [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
        return try waitFor(ThinKey.Reply.of(key), queryID: queryID, timeout: timeout).fields
    }

    /// Sends a request without waiting; returns its query id.
    func submit(_ key: String, _ fields: [(String, CBORValue)]) throws -> [UInt8] {
        let queryID = TestSupport.random(16)
        try send(ThinMessage(key, [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
        return queryID
    }
}

/// Pigeonhole helpers over a ``RawClient``.
struct Stream {
    var writeCap: [UInt8]
    var readCap: [UInt8]
    var first: [UInt8]

    init(_ client: RawClient, seed: [UInt8] = TestSupport.random(32)) throws {
        let reply = try client.request(ThinKey.Request.newKeypair, [(ThinKey.Field.seed, .bytes(seed))])
        writeCap = try reply.bytes(ThinKey.Field.writeCap, length: ThinSizes.writeCap)
        readCap = try reply.bytes(ThinKey.Field.readCap, length: ThinSizes.readCap)
        first = try reply.bytes(ThinKey.Field.firstMessageIndex, length: ThinSizes.messageBoxIndex)
    }

    static func next(_ client: RawClient, _ index: [UInt8]) throws -> [UInt8] {
        try client.request(ThinKey.Request.nextMessageBoxIndex, [(ThinKey.Field.messageBoxIndex, .bytes(index))])
            .bytes(ThinKey.Field.nextMessageBoxIndex, length: ThinSizes.messageBoxIndex)
    }

    struct Envelope {
        var ciphertext: [UInt8]
        var descriptor: [UInt8]
        var hash: [UInt8]
    }

    func encryptWrite(_ client: RawClient, _ index: [UInt8], _ plaintext: [UInt8]) throws -> Envelope {
        let r = try client.request(ThinKey.Request.encryptWrite, [
            (ThinKey.Field.plaintext, .bytes(plaintext)), (ThinKey.Field.writeCap, .bytes(writeCap)),
            (ThinKey.Field.messageBoxIndex, .bytes(index)),
        ])
        #expect(try r.errorCode() == 0)
        return Envelope(ciphertext: try r.bytes(ThinKey.Field.messageCiphertext), descriptor: try r.bytes(ThinKey.Field.envelopeDescriptor), hash: try r.bytes(ThinKey.Field.envelopeHash, length: 32))
    }

    func encryptRead(_ client: RawClient, _ index: [UInt8]) throws -> Envelope {
        let r = try client.request(ThinKey.Request.encryptRead, [(ThinKey.Field.readCap, .bytes(readCap)), (ThinKey.Field.messageBoxIndex, .bytes(index))])
        #expect(try r.errorCode() == 0)
        return Envelope(ciphertext: try r.bytes(ThinKey.Field.messageCiphertext), descriptor: try r.bytes(ThinKey.Field.envelopeDescriptor), hash: try r.bytes(ThinKey.Field.envelopeHash, length: 32))
    }

    func arqFields(_ envelope: Envelope, write: Bool, index: [UInt8]?, noRetry: Bool = false, noIdempotent: Bool = false) -> [(String, CBORValue)] {
        [
            (ThinKey.Field.readCap, write ? .null : .bytes(readCap)),
            (ThinKey.Field.writeCap, write ? .bytes(writeCap) : .null),
            (ThinKey.Field.messageBoxIndex, index.map(CBORValue.bytes) ?? .null),
            (ThinKey.Field.replyIndex, .unsigned(0)),
            (ThinKey.Field.envelopeDescriptor, .bytes(envelope.descriptor)),
            (ThinKey.Field.messageCiphertext, .bytes(envelope.ciphertext)),
            (ThinKey.Field.envelopeHash, .bytes(envelope.hash)),
            (ThinKey.Field.noRetryOnBoxIDNotFound, .bool(noRetry)),
            (ThinKey.Field.noIdempotentBoxAlreadyExists, .bool(noIdempotent)),
        ]
    }

    /// Writes a box; returns the reply's error code.
    func write(_ client: RawClient, _ index: [UInt8], _ plaintext: [UInt8], noIdempotent: Bool = false) throws -> UInt8 {
        let envelope = try encryptWrite(client, index, plaintext)
        return try client.request(ThinKey.Request.startResendingEncryptedMessage, arqFields(envelope, write: true, index: nil, noIdempotent: noIdempotent)).errorCode()
    }

    /// Reads a box; returns the error code and plaintext.
    func read(_ client: RawClient, _ index: [UInt8], noRetry: Bool = true) throws -> (code: UInt8, plaintext: [UInt8]?) {
        let envelope = try encryptRead(client, index)
        let r = try client.request(ThinKey.Request.startResendingEncryptedMessage, arqFields(envelope, write: false, index: index, noRetry: noRetry))
        return (try r.errorCode(), try r.optionalBytes(ThinKey.Field.plaintext))
    }
}
