import CBOR
import Foundation
import KpclientdSim
import StreamCrypto
import Testing
import ThinWire

/// The simulator over real sockets, driven with raw frames.
struct SimWireTests {
    @Test func handshakeSendsStatusThenDocumentThenTokenReply() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            let first = try #require(try await client.next())
            #expect(first.key == ThinKey.Event.connectionStatus)
            // The daemon's frames carry every response key, null but one (Go style).
            let raw = try #require(client.rawValues.first?.mapEntries)
            #expect(raw.count > 20)
            #expect(raw.filter { !$0.value.isNull }.count == 1)
            let status = first.fields
            #expect(try status.bool(ThinKey.Field.isConnected))
            #expect(status.value[ThinKey.Field.err] == .null)
            #expect(try status.bytes(ThinKey.Field.instanceToken, length: 16) == sim.instanceToken)
            let sphinx = try SphinxGeometry(cbor: status.map(ThinKey.Field.sphinxGeometry).value)
            let pigeonhole = try PigeonholeGeometry(cbor: status.map(ThinKey.Field.pigeonholeGeometry).value)
            #expect(sphinx == sim.sphinxGeometry && sphinx.userForwardPayloadLength == 2000)
            #expect(pigeonhole == PigeonholeGeometry(derivedFrom: sphinx) && pigeonhole.maxPlaintextPayloadLength == 1549)

            let second = try #require(try await client.next())
            #expect(second.key == ThinKey.Event.newPKIDocument)
            let document = try ThinFrame.decodeBody(second.fields.bytes(ThinKey.Field.payload))
            let services = try #require(document["ServiceNodes"]?.array)
            let node = try ThinFrame.decodeBody(#require(services.first?.bytes))
            #expect(node["Kaetzchen"]?["echo"]?["endpoint"] == .text("echo"))
            #expect(node["IdentityKey"].flatMap(\.bytes).map { BLAKE2b.hash($0) } == sim.echoServiceIdentityHash)

            let token = TestSupport.random(16)
            try await client.send(ThinMessage(ThinKey.Request.sessionToken, [(ThinKey.Field.clientInstanceToken, .bytes(token))]))
            let reply = try #require(try await client.next())
            #expect(reply.key == ThinKey.Event.sessionTokenReply)
            #expect(try reply.fields.bool(ThinKey.Field.resumed) == false)
            let appID = try reply.fields.bytes(ThinKey.Field.appID, length: 16)

            let other = try RawClient(sim.listenAddress)
            let (otherStatus, _, otherReply) = try await other.handshake(token: TestSupport.random(16))
            #expect(try otherStatus.fields.bytes(ThinKey.Field.instanceToken) == sim.instanceToken)
            #expect(try otherReply?.fields.bytes(ThinKey.Field.appID) != appID)
        }
    }

    @Test func goStyleNullFilledRequestMapsAreAccepted() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let queryID = TestSupport.random(16)
            var entries = ThinKey.Request.all.map { CBORMapEntry(.text($0), .null) }
            let i = try #require(ThinKey.Request.all.firstIndex(of: ThinKey.Request.newKeypair))
            entries[i].value = .textMap([(ThinKey.Field.queryID, .bytes(queryID)), (ThinKey.Field.seed, .bytes(TestSupport.random(32)))])
            try await client.send(.map(entries))
            let reply = try await client.waitFor(ThinKey.Reply.newKeypair, queryID: queryID)
            #expect(try reply.fields.errorCode() == 0)
            #expect(try reply.fields.bytes(ThinKey.Field.writeCap).count == ThinSizes.writeCap)
        }
    }

    /// Requests are counted by kind for the benchmarks; keys the reference does not define all
    /// count as `other`, so a client cannot grow the table without bound.
    @Test func requestsAreCountedByKnownKindOnly() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            for n in 0..<50 { try await client.send(ThinMessage("made_up_request_\(n)", [])) }
            let queryID = TestSupport.random(16)
            try await client.send(ThinMessage(ThinKey.Request.newKeypair, [
                (ThinKey.Field.queryID, .bytes(queryID)), (ThinKey.Field.seed, .bytes(TestSupport.random(32))),
            ]))
            _ = try await client.waitFor(ThinKey.Reply.newKeypair, queryID: queryID)
            let counts = await sim.statistics().requestsByKind
            #expect(counts["other"] == 50)
            #expect(counts[ThinKey.Request.newKeypair] == 1)
            #expect(Set(counts.keys).isSubset(of: Set(ThinKey.Request.all + ["other"])))
        }
    }

    @Test func oversizedLengthPrefixClosesTheConnection() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            try await client.sendRaw([0x02, 0x80, 0x00, 0x01])  // 40 MiB + 1, no body
            #expect(await client.waitForClose())
            try await TestSupport.eventually("the connection to be forgotten") { await sim.statistics().connections == 0 }
        }
    }

    @Test func undecodableAndNonMapFramesCloseTheConnection() async throws {
        try await TestSupport.withSimulator { sim in
            let bad = try RawClient(sim.listenAddress)
            try await bad.handshake()
            try await bad.sendRaw([0, 0, 0, 3, 0x43, 0x01, 0x02] + [0, 0, 0, 1, 0xF6])  // truncated bytes(3)
            #expect(await bad.waitForClose())

            let notAMap = try RawClient(sim.listenAddress)
            try await notAMap.handshake()
            try await notAMap.send(CBORValue.array([.unsigned(1)]))
            #expect(await notAMap.waitForClose())

            // A wrong-length capability fails the daemon's decode: the connection is dropped.
            let wrongCap = try RawClient(sim.listenAddress)
            try await wrongCap.handshake()
            _ = try await wrongCap.submit(ThinKey.Request.nextMessageBoxIndex, [(ThinKey.Field.messageBoxIndex, .bytes([1, 2, 3]))])
            #expect(await wrongCap.waitForClose())

            // Unknown keys and vouchers are silently dropped; the connection stays usable.
            let fine = try RawClient(sim.listenAddress)
            try await fine.handshake()
            try await fine.send(ThinMessage("no_such_request", [(ThinKey.Field.queryID, .bytes(TestSupport.random(16)))]))
            _ = try await fine.submit(ThinKey.Request.voucherMint, [("display_name", .text("x"))])
            let reply = try await fine.request(ThinKey.Request.getDirectoryAuthorities, [])
            #expect(try reply.errorCode() == 0)
            await #expect(throws: TestFailure.self) { _ = try await fine.next(timeout: .milliseconds(200)) }  // nothing else came
        }
    }

    @Test func boxesAreWriteOnceAndTombstonesOverwrite() async throws {
        try await TestSupport.withSimulator { sim in
            let writer = try RawClient(sim.listenAddress)
            try await writer.handshake(token: TestSupport.random(16))
            let reader = try RawClient(sim.listenAddress)
            try await reader.handshake(token: TestSupport.random(16))
            let stream = try await Stream(writer)
            let index = stream.first
            #expect(try await stream.read(reader, index).code == ReplicaErrorCode.boxIDNotFound.rawValue)
            #expect(try await stream.write(writer, index, Array("one".utf8), noIdempotent: true) == 0)
            #expect(try await stream.write(writer, index, Array("one".utf8), noIdempotent: true) == 0)
            #expect(try await stream.write(writer, index, Array("two".utf8), noIdempotent: true) == ReplicaErrorCode.boxAlreadyExists.rawValue)
            #expect(try await stream.write(writer, index, Array("two".utf8)) == 0)  // default: success at the ACK
            let read = try await stream.read(reader, index)
            #expect(read.code == 0 && read.plaintext == Array("one".utf8))
            #expect(try await stream.write(writer, index, [], noIdempotent: true) == 0)  // tombstone overwrites
            let tomb = try await stream.read(reader, index)
            #expect(tomb.code == ReplicaErrorCode.tombstone.rawValue && tomb.plaintext == nil)
            #expect(try await stream.write(writer, index, Array("one".utf8), noIdempotent: true) == ReplicaErrorCode.boxAlreadyExists.rawValue)

            // Envelopes are all the same size, and their hashes unique per call.
            let a = try await stream.encryptWrite(writer, index, Array("x".utf8))
            let b = try await stream.encryptWrite(writer, index, Array("x".utf8))
            let c = try await stream.encryptRead(writer, index)
            #expect(a.hash != b.hash)
            #expect(a.ciphertext.count == c.ciphertext.count && a.ciphertext.count == sim.pigeonholeGeometry.courierQueryWriteLength)
            #expect(await sim.statistics().storedBoxes == 1)
        }
    }

    @Test func cancelSendsTheCancelledReplyBeforeTheCancelReply() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client)
            let envelope = try await stream.encryptRead(client, stream.first)
            let readID = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
            try await TestSupport.eventually("the read to block") { await sim.statistics().blockedReads == 1 }
            let cancelID = try await client.submit(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelope.hash))])
            let first = try #require(try await client.next())
            #expect(first.key == ThinKey.Reply.startResendingEncryptedMessage)
            #expect(try first.fields.queryID() == readID && first.fields.errorCode() == 24)
            #expect(try first.fields.bytes(ThinKey.Field.courierIdentityHash, length: 32) == sim.echoServiceIdentityHash)
            let second = try #require(try await client.next())
            #expect(second.key == ThinKey.Reply.cancelResendingEncryptedMessage)
            #expect(try second.fields.queryID() == cancelID && second.fields.errorCode() == 0)
            try await TestSupport.eventually("the blocked read to go") { await sim.statistics().blockedReads == 0 }
        }
    }

    @Test func stateFileSurvivesARestart() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var configuration = TestSupport.configuration()
        configuration.statePath = directory.appendingPathComponent("state.cbor").path
        let seed = TestSupport.random(32)
        let pendingRead: Stream.Envelope = try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client, seed: seed)
            #expect(try await stream.write(client, stream.first, Array("persisted".utf8), noIdempotent: true) == 0)
            return try await stream.encryptRead(client, stream.first)  // replayed against the next instance
        }
        #expect(FileManager.default.fileExists(atPath: configuration.statePath!))
        #expect(!FileManager.default.fileExists(atPath: configuration.statePath! + ".tmp"))

        try await TestSupport.withSimulator(configuration) { sim in
            #expect(await sim.statistics().storedBoxes == 1)
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client, seed: seed)
            let read = try await stream.read(client, stream.first)
            #expect(read.code == 0 && read.plaintext == Array("persisted".utf8))
            let replay = try await client.request(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(pendingRead, write: false, index: stream.first))
            #expect(try replay.errorCode() == 0 && replay.bytes(ThinKey.Field.plaintext) == Array("persisted".utf8))
        }

        // A corrupted file is refused at start rather than half-loaded.
        try Data([0xA1, 0x61]).write(to: URL(fileURLWithPath: configuration.statePath!))
        do {
            let sim = try await KpclientdSimulator.start(configuration)
            await sim.shutdown()
            Issue.record("a corrupted state file was accepted")
        } catch let error as SimStateError {
            #expect(error.code == .invalid)
        }
    }

    @Test func writeLossAcknowledgesButNeverStores() async throws {
        var configuration = TestSupport.configuration()
        configuration.writeLossProbability = 1
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client)
            #expect(try await stream.write(client, stream.first, Array("lost".utf8)) == 0)
            #expect(try await stream.read(client, stream.first).code == ReplicaErrorCode.boxIDNotFound.rawValue)
            #expect(await sim.statistics().storedBoxes == 0)
        }
    }

    @Test func fullMixnetQueueStopsReadingFromTheConnection() async throws {
        var configuration = TestSupport.configuration()
        configuration.rate = 0.001  // one release every ~17 minutes: effectively stalled
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let payload = CBORValue.bytes([UInt8](repeating: 7, count: 1 << 20))
            let frame = ThinFrame.encode(ThinMessage(ThinKey.Request.sendMessage, [
                (ThinKey.Field.withSURB, .bool(false)), (ThinKey.Field.destinationIDHash, .bytes(sim.echoServiceIdentityHash)),
                (ThinKey.Field.recipientQueueID, .bytes(Array("echo".utf8))), (ThinKey.Field.payload, payload),
            ]).value)
            // Write 64 MiB of mixnet requests without blocking; the socket must fill up.
            let flags = fcntl(client.fd, F_GETFL)
            _ = fcntl(client.fd, F_SETFL, flags | O_NONBLOCK)
            let all = [UInt8]((0..<64).flatMap { _ in frame })
            var written = 0
            var sawBackpressure = false
            let deadline = ContinuousClock.now + .seconds(20)
            while written < all.count && ContinuousClock.now < deadline {
                let n = all.withUnsafeBytes { send(client.fd, $0.baseAddress! + written, all.count - written, Int32(MSG_NOSIGNAL)) }
                if n > 0 { written += n; continue }
                guard errno == EAGAIN || errno == EWOULDBLOCK else { throw TestFailure("send failed: errno \(errno)") }
                let stats = await sim.statistics()
                if stats.blockedReaders == 1 && stats.queuedMixnetRequests == 16 {
                    sawBackpressure = true
                    break
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(sawBackpressure, "the client could write \(written) bytes")
            #expect(written < all.count)
            let stats = await sim.statistics()
            #expect(stats.queuedMixnetRequests == 16)
            #expect(stats.framesReceived == 17)  // 16 queued + 1 waiting for room

            // Releasing everything lets the rest through, and the connection still works.
            await sim.setRate(nil)
            _ = fcntl(client.fd, F_SETFL, flags)
            try await client.sendRaw(Array(all[written...]))
            let reply = try await client.request(ThinKey.Request.getDirectoryAuthorities, [], timeout: .seconds(60))
            #expect(try reply.errorCode() == 0)
            try await TestSupport.eventually("the queue to drain") {
                let s = await sim.statistics()
                return s.queuedMixnetRequests == 0 && s.framesReceived == 64 + 1
            }
        }
    }

    @Test func sessionResumesWithinGraceFlushingLegacyRepliesFirst() async throws {
        var configuration = TestSupport.configuration()
        configuration.meanLatency = .milliseconds(500)
        try await TestSupport.withSimulator(configuration) { sim in
            let token = TestSupport.random(16)
            var appID: [UInt8] = []
            // The echo's latency is random: if it comes back before the drop is noticed, it goes
            // to the old connection and nothing is queued. Try again then (rarely needed).
            var queued = false
            for _ in 0..<5 where !queued {
                let first = try RawClient(sim.listenAddress)
                appID = try #require(try await first.handshake(token: token).reply?.fields.bytes(ThinKey.Field.appID))
                let surbID = TestSupport.random(16)
                try await first.send(ThinMessage(ThinKey.Request.sendMessage, [
                    (ThinKey.Field.id, .null), (ThinKey.Field.withSURB, .bool(true)), (ThinKey.Field.surbID, .bytes(surbID)),
                    (ThinKey.Field.destinationIDHash, .bytes(sim.echoServiceIdentityHash)),
                    (ThinKey.Field.recipientQueueID, .bytes(Array("echo".utf8))), (ThinKey.Field.payload, .bytes(Array("ping".utf8))),
                ]))
                let sent = try await first.waitFor(ThinKey.Event.messageSent)
                #expect(try sent.fields.bytes(ThinKey.Field.surbID) == surbID)
                first.disconnect()  // drop without thin_close while the echo is on its way
                try await TestSupport.eventually("the drop to be noticed") { await sim.statistics().connections == 0 }
                queued = (try? await TestSupport.eventually("the reply to be queued for the absent client", timeout: .seconds(8)) {
                    await sim.statistics().queuedLegacyReplies == 1
                }) != nil
            }
            try #require(queued, "the echo reply was never queued for the absent client")

            let second = try RawClient(sim.listenAddress)
            _ = try await second.handshake()
            try await second.send(ThinMessage(ThinKey.Request.sessionToken, [(ThinKey.Field.clientInstanceToken, .bytes(token))]))
            let flushed = try #require(try await second.next())
            #expect(flushed.key == ThinKey.Event.messageReply)
            #expect(try flushed.fields.bytes(ThinKey.Field.payload).prefix(4) == ArraySlice(Array("ping".utf8)))
            let reply = try #require(try await second.next())
            #expect(reply.key == ThinKey.Event.sessionTokenReply)
            #expect(try reply.fields.bool(ThinKey.Field.resumed))
            #expect(try reply.fields.bytes(ThinKey.Field.appID) == appID)
        }
    }

    @Test func thinCloseAndGraceExpiryDestroyTheSession() async throws {
        var configuration = TestSupport.configuration()
        configuration.grace = .milliseconds(200)
        try await TestSupport.withSimulator(configuration) { sim in
            let token = TestSupport.random(16)
            let a = try RawClient(sim.listenAddress)
            try await a.handshake(token: token)
            try await a.send(ThinMessage(ThinKey.Request.thinClose, body: .map([])))
            #expect(await a.waitForClose())
            let b = try RawClient(sim.listenAddress)
            #expect(try await b.handshake(token: token).reply?.fields.bool(ThinKey.Field.resumed) == false)
            b.disconnect()
            try await TestSupport.eventually("the grace period to expire") { await sim.statistics().sessions == 0 }
            let c = try RawClient(sim.listenAddress)
            #expect(try await c.handshake(token: token).reply?.fields.bool(ThinKey.Field.resumed) == false)
        }
    }

    @Test func shutdownSendsShutdownEventToEveryConnection() async throws {
        let sim = try await KpclientdSimulator.start(TestSupport.configuration())
        let clients = try (0..<3).map { _ in try RawClient(sim.listenAddress) }
        for client in clients { try await client.handshake(token: TestSupport.random(16)) }
        await sim.shutdown()
        for client in clients {
            let event = try #require(try await client.next())
            #expect(event.key == ThinKey.Event.shutdown)
            #expect(try await client.next() == nil)
        }
    }

    @Test func periodicDisconnectsDropClients() async throws {
        var configuration = TestSupport.configuration()
        configuration.disconnectEvery = .milliseconds(100)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            // On a loaded machine the periodic drop may land before the handshake finishes;
            // either way the simulator must close the connection.
            _ = try? await client.handshake(token: TestSupport.random(16))
            #expect(await client.waitForClose())
        }
    }

    @Test func seededSimulatorsAreReproducible() async throws {
        var configuration = TestSupport.configuration()
        configuration.seed = 42
        func appID() async throws -> [UInt8] {
            try await TestSupport.withSimulator(configuration) { sim in
                let client = try RawClient(sim.listenAddress)
                return try #require(try await client.handshake(token: TestSupport.random(16)).reply?.fields.bytes(ThinKey.Field.appID))
            }
        }
        #expect(try await appID() == appID())
    }
}

struct SimConfigurationTests {
    @Test func listenAddressesParse() throws {
        #expect(try SimListenAddress(parsing: "tcp:127.0.0.1:64331") == .tcp(host: "127.0.0.1", port: 64331))
        #expect(try SimListenAddress(parsing: "tcp:[::1]:0") == .tcp(host: "::1", port: 0))
        #expect(try SimListenAddress(parsing: "unix:/tmp/x.sock") == .unix(path: "/tmp/x.sock"))
        #expect(try SimListenAddress(parsing: "@kpclientd") == .abstract(name: "kpclientd"))
        #expect(throws: SimConfigurationError.self) { try SimListenAddress(parsing: "tcp:127.0.0.1") }
        #expect(throws: SimConfigurationError.self) { try SimListenAddress(parsing: "http://x") }
    }

    @Test func durationsParse() throws {
        #expect(try KpclientdSimConfiguration.parseDuration("50ms") == .milliseconds(50))
        #expect(try KpclientdSimConfiguration.parseDuration("1s") == .seconds(1))
        #expect(try KpclientdSimConfiguration.parseDuration("1.5s") == .milliseconds(1500))
        #expect(try KpclientdSimConfiguration.parseDuration("10m") == .seconds(600))
        #expect(try KpclientdSimConfiguration.parseDuration("0") == .zero)
        #expect(throws: SimConfigurationError.self) { try KpclientdSimConfiguration.parseDuration("fast") }
    }

    @Test func geometryFollowsTheConfiguredM() async throws {
        var configuration = TestSupport.configuration()
        configuration.maxPlaintextPayloadLength = 1000
        try await TestSupport.withSimulator(configuration) { sim in
            #expect(sim.pigeonholeGeometry.maxPlaintextPayloadLength == 1000)
            #expect(sim.sphinxGeometry.userForwardPayloadLength == 1451)
        }
    }
}
