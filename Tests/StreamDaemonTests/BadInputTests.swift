import CBOR
import IPC
import Logging
import StreamClient
import Testing

@testable import StreamDaemon

/// Hostile and broken input on the app socket: each mistake affects only its own request or
/// connection, and the daemon stays healthy.
@Suite(.timeLimit(.minutes(10)))
struct BadInputTests {
    static func start(_ adjust: (inout DaemonConfiguration) -> Void = { _ in }) async throws -> (DaemonHarness, TemporaryDirectory) {
        let directory = TemporaryDirectory()
        var configuration = DaemonHarness.configuration(in: directory.path)
        configuration.clientTimeout = .milliseconds(300)
        configuration.logLevel = .critical
        adjust(&configuration)
        return (try await DaemonHarness.start(configuration), directory)
    }

    static func name(_ text: String) throws -> StreamName { try StreamName(text) }

    /// A normal client still works and the daemon reports itself healthy.
    static func expectHealthy(_ daemon: DaemonHarness, connections: UInt64? = nil) async throws {
        let client = try await daemon.client()
        let stream = "health-\(UInt32.random(in: 0...UInt32.max))"
        _ = try await client.create(stream)
        #expect(try await client.write(stream, offset: 0, data: [1, 2, 3]).offset == 3)
        let status = try await client.daemonStatus()
        #expect(status.kpclientdConnected)
        #expect(status.damaged == 0)
        if let connections { #expect(status.connections == connections) }
        try await client.remove(stream)
        await client.close()
    }

    @Test func garbageAndOversizedFramesCloseOnlyTheirConnection() async throws {
        let (daemon, directory) = try await Self.start()
        _ = directory
        let good = try await daemon.client()
        _ = try await good.create("kept")

        // Garbage inside a small frame: not CBOR.
        let garbage = try RawSocketClient(path: daemon.socketPath)
        try await garbage.hello()
        await garbage.send([0, 0, 0, 6, 0xff, 0x00, 0x13, 0x37, 0xfe, 0xc1])
        #expect(try await garbage.goodbyeAndClose()?.code == .malformed)

        // Text where a frame should be: its first 4 bytes are a huge length.
        let text = try RawSocketClient(path: daemon.socketPath)
        await text.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        #expect(try await text.goodbyeAndClose()?.code == .frameTooLarge)

        // An oversized prefix alone: refused at once, before any payload arrives.
        let oversized = try RawSocketClient(path: daemon.socketPath)
        try await oversized.hello()
        await oversized.send([0x7f, 0xff, 0xff, 0xff])
        let goodbye = try await oversized.goodbyeAndClose()
        #expect(goodbye?.code == .frameTooLarge)

        // One byte over the limit too; exactly the limit is a frame size the daemon waits for.
        let over = try RawSocketClient(path: daemon.socketPath)
        let limit = IPCLimits.maxFrameSize + 1
        await over.send([UInt8(limit >> 24 & 0xff), UInt8(limit >> 16 & 0xff), UInt8(limit >> 8 & 0xff), UInt8(limit & 0xff)])
        #expect(try await over.goodbyeAndClose()?.code == .frameTooLarge)

        // Not a map, a map without id: goodbye.
        let array = try RawSocketClient(path: daemon.socketPath)
        await array.send(IPCFraming.frame(CBORValue.array([.unsigned(1), .text("hello")]).encoded()))
        #expect(try await array.goodbyeAndClose()?.code == .malformed)
        let noID = try RawSocketClient(path: daemon.socketPath)
        await noID.send(map: [("op", .text("list"))])
        #expect(try await noID.goodbyeAndClose() != nil)

        // The well-behaved connection never noticed.
        #expect(try await good.write("kept", offset: 0, data: [9, 9]).offset == 2)
        #expect(try await good.list().map(\.name.rawValue) == ["kept"])
        try await Self.expectHealthy(daemon, connections: 2)
        await good.close()
        await daemon.stop()
    }

    @Test func aTruncatedFrameFollowedBySilenceIsClosed() async throws {
        let (daemon, directory) = try await Self.start()
        _ = directory
        let stalled = try RawSocketClient(path: daemon.socketPath)
        try await stalled.hello()
        let began = ContinuousClock.now
        await stalled.send([0, 0, 0, 100, 0xa2, 0x62])  // 2 of 100 bytes, then nothing
        let goodbye = try await stalled.goodbyeAndClose(timeout: .seconds(5))
        let took = ContinuousClock.now - began
        #expect(stalled.peerClosed)
        #expect(goodbye?.code == .malformed)
        #expect(took >= .milliseconds(300) && took < .seconds(3))

        // A connection that never says hello is closed too.
        let silent = try RawSocketClient(path: daemon.socketPath)
        #expect(try await silent.isClosed(within: .seconds(5)))

        // A connection that said hello and is merely idle stays open.
        let idle = try RawSocketClient(path: daemon.socketPath)
        try await idle.hello()
        try await Task.sleep(for: .milliseconds(900))
        let id = await idle.send(.list)
        guard case .success(.list) = try await idle.reply(to: id) else {
            Issue.record("an idle connection was not served")
            return
        }
        try await Self.expectHealthy(daemon)
        await daemon.stop()
    }

    @Test func requestErrorsLeaveTheConnectionOpen() async throws {
        let (daemon, directory) = try await Self.start()
        _ = directory
        let raw = try RawSocketClient(path: daemon.socketPath)

        // Before hello: helloRequired, and the connection stays open (docs/IPC.md section 4).
        #expect(try await raw.error(of: .list).code == .helloRequired)
        #expect(try await raw.error(of: .daemonStatus).code == .helloRequired)
        // No common version: unsupportedVersion, and the app may try again.
        #expect(try await raw.error(of: .hello(minVersion: 2, maxVersion: 9, client: nil)).code == .unsupportedVersion)
        #expect(!raw.peerClosed)
        try await raw.hello()
        // A second hello is refused.
        #expect(try await raw.error(of: .hello(minVersion: 1, maxVersion: 1, client: nil)).code == .invalidArgument)

        // Unknown operation: named in the message.
        await raw.send(map: [("id", .unsigned(77)), ("op", .text("frobnicate"))])
        guard case .failure(let unknown) = try await raw.reply(to: 77) else {
            Issue.record("an unknown op succeeded")
            return
        }
        #expect(unknown.code == .unknownOperation)
        #expect(unknown.message.contains("frobnicate"))

        // A missing field, a wrongly typed field.
        await raw.send(map: [("id", .unsigned(78)), ("op", .text("status"))])
        guard case .failure(let missing) = try await raw.reply(to: 78) else { throw RawSocketClient.Failure(description: "status without name") }
        #expect(missing.code == .invalidArgument)
        #expect(missing.message.contains("name"))
        await raw.send(map: [("id", .unsigned(79)), ("op", .text("write")), ("name", .text("s")), ("offset", .text("zero")), ("data", .bytes([1]))])
        guard case .failure(let mistyped) = try await raw.reply(to: 79) else { throw RawSocketClient.Failure(description: "write with text offset") }
        #expect(mistyped.code == .invalidArgument)
        #expect(mistyped.message.contains("offset"))

        // Bad names.
        for bad in ["bad name!", "", "-leading", String(repeating: "n", count: 65), "ünï"] {
            await raw.send(map: [("id", .unsigned(80)), ("op", .text("create")), ("name", .text(bad)), ("mode", .text("stream"))])
            guard case .failure(let error) = try await raw.reply(to: 80) else {
                Issue.record("the name \(bad.debugDescription) was accepted")
                continue
            }
            #expect(error.code == .invalidName, "\(bad.debugDescription)")
        }

        // Bad addresses in join.
        for bad in ["kps1notanaddress", "", "hello", String(repeating: "k", count: 500)] {
            #expect(try await raw.error(of: .join(name: Self.name("j"), address: bad)).code == .invalidAddress, "\(bad.prefix(20))")
        }

        // Offsets: a gap in a write; a read below what was consumed.
        let created = await raw.send(.create(name: try Self.name("a"), mode: .stream))
        guard case .success(.created(_, let address)) = try await raw.reply(to: created) else { throw RawSocketClient.Failure(description: "create") }
        let joined = await raw.send(.join(name: try Self.name("b"), address: address))
        guard case .success(.created) = try await raw.reply(to: joined) else { throw RawSocketClient.Failure(description: "join") }
        let write = await raw.send(.write(name: try Self.name("a"), offset: 0, data: Array(0..<100)))
        guard case .success(.written(let accepted, _)) = try await raw.reply(to: write), accepted == 100 else {
            throw RawSocketClient.Failure(description: "write")
        }
        let gap = try await raw.error(of: .write(name: try Self.name("a"), offset: 150, data: [1]))
        #expect(gap.code == .wrongOffset)
        #expect(gap.expectedOffset == 100)
        // Receive and consume 40 bytes on b.
        var received = 0
        while received < 100 {
            let read = await raw.send(.read(name: try Self.name("b"), offset: UInt64(received), maxLength: 1000, wait: true))
            guard case .success(.data(_, let bytes, _)) = try await raw.reply(to: read) else { throw RawSocketClient.Failure(description: "read") }
            received += bytes.count
        }
        let consume = await raw.send(.consume(name: try Self.name("b"), offset: 40))
        guard case .success(.consumed(40)) = try await raw.reply(to: consume) else { throw RawSocketClient.Failure(description: "consume") }
        let below = try await raw.error(of: .read(name: try Self.name("b"), offset: 10, maxLength: 10, wait: false))
        #expect(below.code == .wrongOffset)
        #expect(below.expectedOffset == 40)
        let beyond = try await raw.error(of: .read(name: try Self.name("b"), offset: 101, maxLength: 10, wait: false))
        #expect(beyond.code == .wrongOffset)
        #expect(beyond.expectedOffset == 100)
        #expect(try await raw.error(of: .status(name: try Self.name("nope"))).code == .noSuchStream)

        // After all of that, the same connection still works.
        let status = await raw.send(.status(name: try Self.name("b")))
        guard case .success(.status(let info)) = try await raw.reply(to: status) else { throw RawSocketClient.Failure(description: "status") }
        #expect(info.bytesConsumed == 40 && info.bytesReceived == 100)
        #expect(!raw.peerClosed)
        try await Self.expectHealthy(daemon, connections: 2)
        await daemon.stop()
    }

    @Test func connectionsOverTheLimitAreRefusedWithAGoodbye() async throws {
        let (daemon, directory) = try await Self.start { $0.maxConnections = 4 }
        _ = directory
        var clients: [StreamdClient] = []
        for _ in 0..<4 { clients.append(try await daemon.client()) }
        for _ in 0..<3 {
            let refused = try RawSocketClient(path: daemon.socketPath)
            #expect(try await refused.goodbyeAndClose()?.code == .busy)
        }
        await #expect(throws: (any Error).self) { _ = try await daemon.client() }
        // The four admitted ones still work.
        for (index, client) in clients.enumerated() { _ = try await client.create("c\(index)") }
        #expect(try await clients[0].daemonStatus().connections == 4)
        // Closing one makes room.
        await clients.removeLast().close()
        var admitted: StreamdClient?
        for _ in 0..<50 where admitted == nil {
            admitted = try? await daemon.client()
            if admitted == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        let fifth = try #require(admitted)
        #expect(try await fifth.list().count == 4)
        await fifth.close()
        for client in clients { await client.close() }
        await daemon.stop()
    }

    @Test func requestsOverThePerConnectionLimitGetTooManyRequests() async throws {
        let (daemon, directory) = try await Self.start { $0.maxRequestsPerConnection = 4 }
        _ = directory
        let raw = try RawSocketClient(path: daemon.socketPath)
        try await raw.hello()
        let create = await raw.send(.create(name: try Self.name("quiet"), mode: .stream))
        guard case .success = try await raw.reply(to: create) else { throw RawSocketClient.Failure(description: "create") }
        // Four long polls on a stream nobody writes to stay in flight.
        var polls: [UInt64] = []
        for _ in 0..<4 { polls.append(await raw.send(.read(name: try Self.name("quiet"), offset: 0, maxLength: 100, wait: true))) }
        try await Task.sleep(for: .milliseconds(100))
        let extra = try await raw.error(of: .list)
        #expect(extra.code == .tooManyRequests)
        #expect(extra.retryAfterMilliseconds != nil)
        #expect(try await raw.error(of: .daemonStatus).code == .tooManyRequests)
        #expect(!raw.peerClosed)
        // Another connection is not limited by this one.
        let other = try await daemon.client()
        #expect(try await other.list().count == 1)
        // Removing the stream ends the polls (noSuchStream), which frees the slots.
        try await other.remove("quiet")
        for poll in polls {
            guard case .failure(let error) = try await raw.reply(to: poll) else {
                Issue.record("a poll of a removed stream succeeded")
                continue
            }
            #expect(error.code == .noSuchStream)
        }
        let list = await raw.send(.list)
        guard case .success(.list(let streams)) = try await raw.reply(to: list) else { throw RawSocketClient.Failure(description: "list") }
        #expect(streams.isEmpty)

        // An app that disconnects with long polls outstanding frees its connection slot.
        _ = try await other.create("quiet2")
        let leaving = try RawSocketClient(path: daemon.socketPath)
        try await leaving.hello()
        for _ in 0..<3 { await leaving.send(.read(name: try Self.name("quiet2"), offset: 0, maxLength: 100, wait: true)) }
        try await Task.sleep(for: .milliseconds(100))
        #expect(try await other.daemonStatus().connections == 3)
        leaving.shutdown()
        var connections: UInt64 = 0
        for _ in 0..<100 {
            connections = try await other.daemonStatus().connections
            if connections == 2 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(connections == 2)
        await other.close()
        try await Self.expectHealthy(daemon)
        await daemon.stop()
    }
}
