import CBOR
import Testing
import ThinWire

@testable import ThinClient

/// Protocol edge cases against a scripted daemon over real sockets.
@Suite("thin client against a scripted daemon", .timeLimit(.minutes(1)))
struct FakeDaemonProtocolTests {
    /// Connects a client to `daemon`, serving the handshake on the first connection.
    static func connect(
        _ daemon: FakeDaemon, configure: (inout ThinClientConfiguration) -> Void = { _ in }
    ) async throws -> (ThinClient, FakeConnection, token: [UInt8]) {
        var configuration = daemon.clientConfiguration()
        configure(&configuration)
        async let client = ThinClient.connect(configuration: configuration)
        let connection = try await daemon.nextConnection()
        let token = try await connection.handshake()
        return (try await client, connection, token)
    }

    /// Waits for the first event matching `predicate`.
    static func waitFor(_ events: AsyncStream<ThinClientEvent>, _ predicate: (ThinClientEvent) -> Bool) async -> ThinClientEvent? {
        for await event in events where predicate(event) {
            return event
        }
        return nil
    }

    static let anyReadCap = try! ReadCapability(bytes: [UInt8](repeating: 1, count: 136))
    static let anyIndex = try! MessageBoxIndex(bytes: [UInt8](repeating: 2, count: 104))
    static func readRequest(hash: UInt8 = 9) -> ResendingRequest {
        let message = EncryptedMessage(
            messageCiphertext: [1, 2, 3], envelopeDescriptor: [4, 5], envelopeHash: [UInt8](repeating: hash, count: 32),
            nextMessageBoxIndex: anyIndex
        )
        return .read(message, readCapability: anyReadCap, index: anyIndex)
    }

    @Test func handshakeAcceptsGoStyleFramesAndDispatchesInterleavedOnes() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        async let connecting = ThinClient.connect(configuration: daemon.clientConfiguration())
        let connection = try await daemon.nextConnection()
        // Go-style: every Response key present, null but one.
        func goStyle(_ message: ThinMessage) -> CBORValue {
            var entries = (ThinKey.Event.all + [ThinKey.Reply.newKeypair, ThinKey.Reply.encryptRead]).map {
                CBORMapEntry(.text($0), .null)
            }
            if let index = entries.firstIndex(where: { $0.key == .text(message.key) }) {
                entries[index].value = message.body
            }
            return .map(entries)
        }
        // An unrelated reply and an unknown event before the status are dispatched, not fatal.
        connection.send(value: .textMap([("mystery_event", .textMap([])), ("other", .null)]))
        connection.send(value: goStyle(FakeConnection.status(isConnected: false)))
        connection.send(value: goStyle(ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .null)])))
        let tokenMessage = try await connection.expect(ThinKey.Request.sessionToken)
        let token = try tokenMessage.fields.bytes(ThinKey.Field.clientInstanceToken, length: 16)
        // A status change and a stray reply arrive before the token reply.
        connection.send(value: goStyle(FakeConnection.status(isConnected: true)))
        connection.send(
            ThinMessage(ThinKey.Reply.newKeypair, [(ThinKey.Field.queryID, .bytes([UInt8](repeating: 3, count: 16))), (ThinKey.Field.errorCode, .unsigned(0))])
        )
        connection.send(
            value: goStyle(ThinMessage(ThinKey.Event.sessionTokenReply, [(ThinKey.Field.appID, .bytes([UInt8](repeating: 1, count: 16))), (ThinKey.Field.resumed, .bool(false))]))
        )
        let client = try await connecting
        #expect(token.count == 16)
        #expect(token == client.instanceToken)
        #expect(await client.isSessionEstablished)
        #expect(await client.isConnected, "the status sent during the handshake was applied")
        #expect(await client.pigeonholeGeometry?.maxPlaintextPayloadLength == 1549)
        #expect(await client.pkiDocument == nil)
        await client.close()
    }

    @Test func handshakeTimesOutWhenTheDaemonIsSilent() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        var configuration = daemon.clientConfiguration()
        configuration.handshakeTimeout = .milliseconds(300)
        async let connecting = ThinClient.connect(configuration: configuration)
        let connection = try await daemon.nextConnection()
        do {
            _ = try await connecting
            Issue.record("connected without a handshake")
        } catch let error as ThinClientError {
            #expect(error.code == .handshakeFailed)
            #expect(error.message.contains("timed out"))
        }
        await connection.waitUntilClosed()
    }

    @Test func aSlowFirstFrameIsAwaited() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        async let connecting = ThinClient.connect(configuration: daemon.clientConfiguration())
        let connection = try await daemon.nextConnection()
        try await Task.sleep(for: .milliseconds(1500))  // kpclientd may wait up to 30 s for a PKI document
        try await connection.handshake()
        let client = try await connecting
        #expect(await client.isSessionEstablished)
        await client.close()
    }

    @Test func cancellingConnectStopsTheHandshake() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let connecting = Task { try await ThinClient.connect(configuration: daemon.clientConfiguration()) }
        let connection = try await daemon.nextConnection()
        connecting.cancel()
        await #expect {
            _ = try await connecting.value
        } throws: { error in
            (error as? ThinClientError)?.code == .cancelled
        }
        await connection.waitUntilClosed()
    }

    @Test func connectFailsWhenNothingListens() async throws {
        let daemon = try await FakeDaemon.start()
        let configuration = daemon.clientConfiguration()
        await daemon.stop()
        await #expect(throws: ThinClientError.self) { try await ThinClient.connect(configuration: configuration) }
    }

    @Test(arguments: ["oversized", "garbage", "not-a-map", "two-keys"])
    func aBadFrameClosesTheConnectionAndTheClientReconnects(kind: String) async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, first, token) = try await Self.connect(daemon)
        let events = try await client.events()
        let pending = Task { try await client.newKeypair(seed: [UInt8](repeating: 5, count: 32)) }
        try await first.expect(ThinKey.Request.newKeypair)
        switch kind {
        case "oversized":
            // A prefix one byte above the 40 MiB cap, and no body: the client must not wait for it.
            first.sendRaw([0x02, 0x80, 0x00, 0x01])
        case "garbage":
            first.sendRaw([0, 0, 0, 4, 0xFF, 0xFE, 0x1C, 0x00])
        case "not-a-map":
            first.send(value: .unsigned(7))
        default:
            first.send(value: .textMap([("shutdown_event", .textMap([])), ("new_pki_document_event", .textMap([]))]))
        }
        await first.waitUntilClosed()
        // The pending local request fails instead of hanging.
        await #expect {
            try await pending.value
        } throws: { error in
            (error as? ThinClientError)?.code == .connectionLost
        }
        #expect(await Self.waitFor(events) { $0 == .disconnected(graceful: false) } != nil)
        let second = try await daemon.nextConnection()
        let secondToken = try await second.handshake(resumed: true)
        #expect(secondToken == token, "the same session token is presented again")
        #expect(await Self.waitFor(events) { $0 == .connected(resumed: true) } != nil)
        await client.close()
    }

    @Test func theClientNeverSendsAnOversizedFrame() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await Self.connect(daemon)
        let writeCap = try WriteCapability(bytes: [UInt8](repeating: 3, count: 168))
        let huge = [UInt8](repeating: 0x61, count: ThinFrame.maximumLength)
        await #expect {
            _ = try await client.encryptWrite(plaintext: huge, writeCapability: writeCap, index: Self.anyIndex)
        } throws: { error in
            (error as? ThinClientError)?.code == .frameTooLarge
        }
        // Nothing was sent: the next frame the daemon sees is the next request, which works.
        let next = Task { try await client.messageBoxIndexCounter(of: Self.anyIndex) }
        let request = try await connection.expect(ThinKey.Request.getMessageBoxIndexCounter)
        try connection.reply(to: request, [(ThinKey.Field.counter, .unsigned(42)), (ThinKey.Field.errorCode, .unsigned(0))])
        #expect(try await next.value == 42)
        await client.close()
    }

    @Test func localRequestsTimeOut() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await Self.connect(daemon) { $0.localRequestTimeout = .milliseconds(200) }
        await #expect {
            _ = try await client.getDirectoryAuthorities()
        } throws: { error in
            (error as? ThinClientError)?.code == .timeout
        }
        let request = try await connection.expect(ThinKey.Request.getDirectoryAuthorities)
        // A late reply is dropped harmlessly.
        try connection.reply(to: request, [(ThinKey.Field.errorCode, .unsigned(0))])
        #expect(await client.isSessionEstablished)
        await client.close()
    }

    @Test func inFlightResendingIsReplayedByteForByteAfterReconnect() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, first, _) = try await Self.connect(daemon)
        let read = Task { try await client.startResendingEncryptedMessage(Self.readRequest()) }
        let (original, originalBody) = try await first.nextMessage()
        #expect(original.key == ThinKey.Request.startResendingEncryptedMessage)
        first.close()
        let second = try await daemon.nextConnection()
        try await second.handshake(resumed: true)
        let (replayed, replayedBody) = try await second.nextMessage()
        #expect(replayedBody == originalBody, "replayed byte for byte")
        #expect(try replayed.fields.queryID() == original.fields.queryID())
        try second.reply(to: replayed, [(ThinKey.Field.plaintext, .bytes([9, 9])), (ThinKey.Field.errorCode, .unsigned(0))])
        let result = try await read.value
        #expect(result.plaintext == [9, 9])
        await client.close()
    }

    @Test func cancellingAResendingTaskCancelsItAtTheDaemon() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await Self.connect(daemon)
        let read = Task { try await client.startResendingEncryptedMessage(Self.readRequest(hash: 0x42)) }
        let original = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        #expect(await client.outstandingMixnetRequests == 1)
        read.cancel()
        let cancel = try await connection.expect(ThinKey.Request.cancelResendingEncryptedMessage)
        #expect(try cancel.fields.bytes(ThinKey.Field.envelopeHash, length: 32) == [UInt8](repeating: 0x42, count: 32))
        await #expect {
            _ = try await read.value
        } throws: { error in
            (error as? ThinClientError)?.code == .cancelled
        }
        #expect(await client.outstandingMixnetRequests == 0)
        // The daemon's answers (EC 24 for the original, then the cancel reply) are absorbed.
        try connection.reply(to: original, [(ThinKey.Field.errorCode, .unsigned(24))])
        try connection.reply(to: cancel, [(ThinKey.Field.errorCode, .unsigned(0))])
        await client.close()
    }

    @Test func theLimiterCapsMixnetRequestsButNotLocalOnes() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await Self.connect(daemon) { $0.maxOutstandingMixnetRequests = 2 }
        let reads = (0..<3).map { n in Task { try await client.startResendingEncryptedMessage(Self.readRequest(hash: UInt8(n))) } }
        let first = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let second = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        // The third waits for a slot, while a local request goes straight through.
        let counter = Task { try await client.messageBoxIndexCounter(of: Self.anyIndex) }
        let local = try await connection.expect(ThinKey.Request.getMessageBoxIndexCounter)
        try connection.reply(to: local, [(ThinKey.Field.counter, .unsigned(1)), (ThinKey.Field.errorCode, .unsigned(0))])
        #expect(try await counter.value == 1)
        #expect(await client.outstandingMixnetRequests == 2)
        try connection.reply(to: first, [(ThinKey.Field.plaintext, .bytes([1])), (ThinKey.Field.errorCode, .unsigned(0))])
        let third = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        try connection.reply(to: second, [(ThinKey.Field.plaintext, .bytes([2])), (ThinKey.Field.errorCode, .unsigned(0))])
        try connection.reply(to: third, [(ThinKey.Field.plaintext, .bytes([3])), (ThinKey.Field.errorCode, .unsigned(0))])
        var plaintexts: [[UInt8]] = []
        for read in reads { plaintexts.append(try await read.value.plaintext ?? []) }
        #expect(plaintexts.sorted { $0.lexicographicallyPrecedes($1) } == [[1], [2], [3]])
        #expect(await client.outstandingMixnetRequests == 0)
        await client.close()
    }

    @Test func shutdownEventMakesTheDisconnectGracefulAndCloseSendsThinClose() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, first, _) = try await Self.connect(daemon)
        let events = try await client.events()
        first.send(ThinMessage(ThinKey.Event.shutdown, body: .textMap([])))
        first.close()
        #expect(await Self.waitFor(events) { $0 == .shutdown } != nil)
        #expect(await Self.waitFor(events) { $0 == .disconnected(graceful: true) } != nil)
        let second = try await daemon.nextConnection()
        try await second.handshake()
        #expect(await Self.waitFor(events) { $0 == .connected(resumed: false) } != nil)
        await client.close()
        try await second.expect(ThinKey.Request.thinClose)
        await second.waitUntilClosed()
        await #expect {
            _ = try await client.newKeypair(seed: [UInt8](repeating: 0, count: 32))
        } throws: { error in
            (error as? ThinClientError)?.code == .closed
        }
    }

    @Test func abstractAndPathUnixSockets() async throws {
        let name = "streamd-thin-test-\(UInt32.random(in: 0 ... .max))"
        for listen in [FakeDaemon.Listen.abstract(name: name), .unix(path: "/tmp/\(name).sock")] {
            let daemon = try await FakeDaemon.start(listen)
            let (client, connection, token) = try await Self.connect(daemon)
            #expect(token.count == 16)
            let next = Task { try await client.nextMessageBoxIndex(after: Self.anyIndex) }
            let request = try await connection.expect(ThinKey.Request.nextMessageBoxIndex)
            try connection.reply(
                to: request, [(ThinKey.Field.nextMessageBoxIndex, .bytes([UInt8](repeating: 8, count: 104))), (ThinKey.Field.errorCode, .unsigned(0))]
            )
            #expect(try await next.value.bytes == [UInt8](repeating: 8, count: 104))
            await client.close()
            await daemon.stop()
        }
    }

    @Test func repliesWithWrongLengthsAreProtocolViolations() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await Self.connect(daemon)
        let keypair = Task { try await client.newKeypair(seed: [UInt8](repeating: 1, count: 32)) }
        let request = try await connection.expect(ThinKey.Request.newKeypair)
        try connection.reply(
            to: request,
            [
                (ThinKey.Field.writeCap, .bytes([UInt8](repeating: 0, count: 167))),
                (ThinKey.Field.readCap, .bytes([UInt8](repeating: 0, count: 136))),
                (ThinKey.Field.firstMessageIndex, .bytes([UInt8](repeating: 0, count: 104))),
                (ThinKey.Field.errorCode, .unsigned(0)),
            ]
        )
        await #expect {
            _ = try await keypair.value
        } throws: { error in
            (error as? ThinClientError)?.code == .protocolViolation
        }
        // The connection survives a malformed reply.
        #expect(await client.isSessionEstablished)
        // Wrong lengths are also refused before sending.
        await #expect(throws: ThinClientError.self) { _ = try await client.newKeypair(seed: [1, 2, 3]) }
        await #expect(throws: ThinClientError.self) { try await client.cancelResendingEncryptedMessage(envelopeHash: [1]) }
        await client.close()
    }
}
