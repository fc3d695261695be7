import CBOR
import Foundation
import KpclientdSim
import Testing
import ThinWire

/// The network model: paced send ticks, resends first, the resend queue, the couriers' dedup
/// cache, retransmissions, courier churn, replays, box expiry and the PKI document.
@Suite(.timeLimit(.minutes(3)))
struct NetworkModelTests {
    /// A paced configuration at test time scales: `rate` ticks per second, zero latency, a
    /// 150 ms retransmission slop and a 1.5 s dedup cache.
    static func paced(rate: Double = 100) -> KpclientdSimConfiguration {
        var configuration = TestSupport.configuration()
        configuration.rate = rate
        configuration.networkModel = true
        configuration.roundTripSlop = .milliseconds(150)
        configuration.dedupCacheTTL = .milliseconds(1500)
        configuration.redispatchGrace = .milliseconds(200)
        configuration.resendQueueFullBackoff = .milliseconds(10)
        return configuration
    }

    static func client(_ sim: KpclientdSimulator) async throws -> RawClient {
        let client = try RawClient(sim.listenAddress)
        try await client.handshake(token: TestSupport.random(16))
        return client
    }

    static func close(_ a: Double?, _ b: Double) -> Bool {
        guard let a else { return false }
        return abs(a - b) <= 1e-12
    }

    static func decodeDocument(_ message: ThinMessage) throws -> ThinFields {
        let payload = try message.fields.bytes(ThinKey.Field.payload)
        return ThinFields(try WireCBOR.decode(payload), context: "document")
    }

    @Test func pkiDocumentPublishesLambdaPAndDropsRemovedFields() async throws {
        var configuration = TestSupport.configuration()
        KpclientdSimProfile.testnet.apply(to: &configuration)
        configuration.meanLatency = .zero
        #expect(configuration.rate == 1.0 && Self.close(configuration.lambdaP, 0.001))
        var mainnet = TestSupport.configuration()
        KpclientdSimProfile.mainnet.apply(to: &mainnet)
        #expect(Self.close(mainnet.lambdaP, 0.00025) && mainnet.courierCount == 3 && mainnet.boxTTL == .seconds(7 * 86_400))
        var fast = TestSupport.configuration()
        KpclientdSimProfile.testnet.apply(to: &fast, speedup: 20)
        #expect(fast.rate == 20 && fast.meanLatency == .milliseconds(50) && fast.roundTripSlop == .seconds(1))
        #expect(fast.dedupCacheTTL == .seconds(15) && fast.redispatchGrace == .milliseconds(1500) && fast.isPaced)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            let document = try Self.decodeDocument(try await client.handshake().document)
            #expect(Self.close(document.raw("LambdaP")?.double, 0.001))
            for dropped in ["SendRatePerMinute", "LambdaD", "MuMaxDelay", "LambdaPMaxDelay", "LambdaLMaxDelay", "LambdaDMaxDelay", "LambdaMMaxDelay", "LambdaGMaxDelay"] {
                #expect(document.raw(dropped) == nil, "\(dropped) is still published")
            }
            let services = try document.array("ServiceNodes")
            #expect(services.count == 2)  // echo + courier, and a second courier
            await sim.setRate(250)
            let updated = try Self.decodeDocument(try await client.waitFor(ThinKey.Event.newPKIDocument))
            #expect(Self.close(updated.raw("LambdaP")?.double, 0.25))
        }
        // Unpaced: a λP so high that a client pacing itself to it is not slowed down.
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            let document = try Self.decodeDocument(try await client.handshake().document)
            #expect(document.raw("LambdaP")?.double == 1.0)
        }
    }

    @Test func eachWriteCostsOneTickSharedRoundRobinAcrossConnections() async throws {
        try await TestSupport.withSimulator(Self.paced(rate: 40)) { sim in
            let busy = try await Self.client(sim)
            let quiet = try await Self.client(sim)
            let stream = try await Stream(busy)
            var index = stream.first
            var envelopes: [Stream.Envelope] = []
            for i in 0..<10 {
                envelopes.append(try await stream.encryptWrite(busy, index, [UInt8(i)]))
                index = try await Stream.next(busy, index)
            }
            let other = try await Stream(quiet)
            let envelope = try await other.encryptWrite(quiet, other.first, [1])
            let started = ContinuousClock.now
            var busyIDs: [[UInt8]] = []
            for envelope in envelopes {
                busyIDs.append(try await busy.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: true, index: nil)))
            }
            let quietReply = try await quiet.request(ThinKey.Request.startResendingEncryptedMessage, other.arqFields(envelope, write: true, index: nil))
            #expect(try quietReply.errorCode() == 0)
            let ticksAtQuietReply = await sim.statistics().sendTicks
            // Round robin: the quiet connection waited for about two ticks, not behind all ten.
            #expect(ticksAtQuietReply < 8, "the quiet connection got its tick only after \(ticksAtQuietReply)")
            for id in busyIDs {
                #expect(try await busy.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: id).fields.errorCode() == 0)
            }
            let elapsed = ContinuousClock.now - started
            let stats = await sim.statistics()
            #expect(stats.sendTicks == 11)  // one per idempotent write
            #expect(stats.storedBoxes == 11)
            #expect(elapsed > .milliseconds(60), "11 ticks at 40/s took only \(elapsed)")
        }
    }

    @Test func resendsGoFirstSoARetryingReadStarvesLaterRequests() async throws {
        try await TestSupport.withSimulator(Self.paced(rate: 200)) { sim in
            let client = try await Self.client(sim)
            let writer = try await Self.client(sim)
            let stream = try await Stream(writer)
            let read = try await stream.encryptRead(client, stream.first)
            let readID = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(read, write: false, index: stream.first))
            try await TestSupport.eventually("the read to retry") { await sim.statistics().ticksOnEmptyBoxReads >= 5 }
            // At zero latency the read's next resend is always queued before the next tick,
            // and resends go first: a write on the same connection never gets a tick.
            let own = try await Stream(client)
            let envelope = try await own.encryptWrite(client, own.first, [7])
            let before = await sim.statistics()
            let writeID = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, own.arqFields(envelope, write: true, index: nil))
            try await Task.sleep(for: .seconds(1))
            let after = await sim.statistics()
            let ticks = after.sendTicks - before.sendTicks
            let onReads = after.ticksOnEmptyBoxReads - before.ticksOnEmptyBoxReads
            // The write waits for a tick on which no resend is queued, which happens only when
            // a tick comes within microseconds of the previous one.
            #expect(ticks >= 10 && Double(onReads) >= 0.8 * Double(ticks), "\(onReads) of \(ticks) ticks went to the read")
            // Once the box is written (from the other connection), the read ends and the write goes.
            #expect(try await stream.write(writer, stream.first, Array("late".utf8)) == 0)
            let readReply = try await client.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: readID)
            #expect(try readReply.fields.errorCode() == 0)
            #expect(try readReply.fields.optionalBytes(ThinKey.Field.plaintext) == Array("late".utf8))
            #expect(try await client.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: writeID).fields.errorCode() == 0)
        }
    }

    @Test func aFullResendQueueReArmsTheResend() async throws {
        var configuration = Self.paced(rate: 200)
        configuration.meanLatency = .milliseconds(700)  // replies come back after the first sends
        configuration.roundTripSlop = .seconds(20)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try await Self.client(sim)
            let stream = try await Stream(client)
            var index = stream.first
            var envelopes: [(Stream.Envelope, [UInt8])] = []
            for _ in 0..<12 {
                envelopes.append((try await stream.encryptRead(client, index), index))
                index = try await Stream.next(client, index)
            }
            for (envelope, index) in envelopes {
                _ = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: index))
            }
            try await TestSupport.eventually("the first sends") {
                let stats = await sim.statistics()
                return stats.inFlightOperations == 12 && stats.queuedMixnetRequests == 0
            }
            await sim.setRate(0.01)  // stall the ticks: the ACKed reads pile up waiting for follow-up ticks
            try await TestSupport.eventually("the resend queue to overflow") { await sim.statistics().resendQueueOverflows > 0 }
            for _ in 0..<20 {
                let stats = await sim.statistics()
                #expect(stats.queuedResends <= 8)
                #expect(stats.inFlightOperations == 12)  // in flight is not capped
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await sim.statistics().queuedResends == 8)
            // Nothing completed: the only frame is the document with the new LambdaP.
            #expect(try await client.next(timeout: .seconds(2))?.key == ThinKey.Event.newPKIDocument)
            await #expect(throws: (any Error).self) { _ = try await client.next(timeout: .milliseconds(100)) }
        }
    }

    @Test func noRetryReadOfAnEmptyBoxTakesTheAckRoundAndThePayloadRound() async throws {
        try await TestSupport.withSimulator(Self.paced()) { sim in
            let client = try await Self.client(sim)
            let stream = try await Stream(client)
            let read = try await stream.read(client, stream.first, noRetry: true)
            #expect(read.code == ReplicaErrorCode.boxIDNotFound.rawValue)
            let stats = await sim.statistics()
            #expect(stats.sendTicks == 2)
            #expect(stats.ticksOnEmptyBoxReads == 2)
        }
    }

    @Test func aReadStartedBeforeTheWriteSeesItOnlyWhenTheCourierCacheExpires() async throws {
        var configuration = Self.paced(rate: 100)
        configuration.dedupCacheTTL = .seconds(4)  // generous, so that a loaded machine still writes within it
        try await TestSupport.withSimulator(configuration) { sim in
            let reader = try await Self.client(sim)
            let writer = try await Self.client(sim)
            let stream = try await Stream(writer)
            let envelope = try await stream.encryptRead(reader, stream.first)
            let started = ContinuousClock.now
            let readID = try await reader.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
            try await TestSupport.eventually("the courier to use up its refreshes") { await sim.statistics().courierRedispatches >= 5 }
            #expect(try await stream.write(writer, stream.first, Array("now".utf8)) == 0)
            let written = ContinuousClock.now
            #expect(written - started < .milliseconds(3500), "the write itself took too long to test the cache")
            let reply = try await reader.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: readID, timeout: .seconds(10))
            let seen = ContinuousClock.now
            #expect(try reply.fields.optionalBytes(ThinKey.Field.plaintext) == Array("now".utf8))
            #expect(seen - started >= .seconds(4), "seen after \(seen - started), before the 4 s cache TTL")
            let stats = await sim.statistics()
            #expect(stats.courierRedispatches == 5)
            #expect(stats.staleCacheAnswers > 10)
            // A fresh envelope is a new cache entry: it sees the box at once.
            let again = try await stream.read(reader, stream.first, noRetry: true)
            #expect(again.code == 0 && again.plaintext == Array("now".utf8))
        }
    }

    @Test func aDepartedCourierHangsItsARQsWhichRetransmitUntilCancelled() async throws {
        try await TestSupport.withSimulator(Self.paced(rate: 200)) { sim in
            let reader = try await Self.client(sim)
            let writer = try await Self.client(sim)
            let stream = try await Stream(writer)
            let envelope = try await stream.encryptRead(reader, stream.first)
            let readID = try await reader.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
            try await TestSupport.eventually("the read to retry") { await sim.statistics().ticksOnEmptyBoxReads >= 3 }
            #expect(await sim.departCourier())
            let document = try Self.decodeDocument(try await reader.waitFor(ThinKey.Event.newPKIDocument))
            #expect(try document.array("ServiceNodes").count == 2)  // echo without a courier, and the replacement
            #expect(try await stream.write(writer, stream.first, Array("x".utf8)) == 0)  // the write takes the new courier
            try await TestSupport.eventually("retransmissions to the departed courier") { await sim.statistics().arqRetransmissions >= 3 }
            let stats = await sim.statistics()
            #expect(stats.arqsOnDepartedCouriers == 1 && stats.courierDepartures == 1)
            #expect(stats.inFlightOperations == 1)
            let cancelID = try await reader.submit(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelope.hash))])
            let cancelled = try await reader.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: readID)
            #expect(try cancelled.fields.errorCode() == ThinClientErrorCode.startResendingCancelled.rawValue)
            #expect(try await reader.waitFor(ThinKey.Reply.cancelResendingEncryptedMessage, queryID: cancelID).fields.errorCode() == 0)
            #expect(await sim.statistics().arqsOnDepartedCouriers == 0)
            // A fresh envelope goes to the courier present now.
            let fresh = try await stream.read(reader, stream.first, noRetry: false)
            #expect(fresh.code == 0 && fresh.plaintext == Array("x".utf8))
        }
    }

    @Test func courierChurnReplacesCouriersOnASchedule() async throws {
        var configuration = TestSupport.configuration()
        configuration.courierCount = 2
        configuration.courierChurnInterval = .milliseconds(100)
        #expect(try KpclientdSimConfiguration.parseChurn("6/h") == .seconds(600))
        #expect(try KpclientdSimConfiguration.parseChurn("90s") == .seconds(90))
        #expect(throws: SimConfigurationError.self) { try KpclientdSimConfiguration.parseChurn("6/week") }
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            try await TestSupport.eventually("couriers to leave") { await sim.statistics().courierDepartures >= 3 }
            let document = try Self.decodeDocument(try await client.waitFor(ThinKey.Event.newPKIDocument))
            let couriers = try document.array("ServiceNodes").filter { node in
                guard let bytes = node.bytes, let value = try? WireCBOR.decode(bytes),
                    let services = (try? ThinFields(value, context: "node").map("Kaetzchen"))
                else { return false }
                return services.contains("courier")
            }
            #expect(couriers.count == 2)
        }
        // Fast churn: hundreds of departures (the memory of them is pruned), and the simulator still answers.
        configuration.courierChurnInterval = .milliseconds(1)
        try await TestSupport.withSimulator(configuration) { sim in
            try await TestSupport.eventually("many couriers to leave") { await sim.statistics().courierDepartures > 300 }
            let client = try await Self.client(sim)
            _ = try await Stream(client)
            #expect(await sim.statistics().arqsOnDepartedCouriers == 0)
        }
    }

    @Test func aReplayAfterResumeStartsASecondARQAndCancelReachesOnlyTheNewest() async throws {
        try await TestSupport.withSimulator { sim in
            let token = TestSupport.random(16)
            let first = try RawClient(sim.listenAddress)
            try await first.handshake(token: token)
            let writer = try await Self.client(sim)
            let stream = try await Stream(writer)
            let envelope = try await stream.encryptRead(first, stream.first)
            let fields = stream.arqFields(envelope, write: false, index: stream.first)
            let originalID = try await first.submit(ThinKey.Request.startResendingEncryptedMessage, fields)
            try await TestSupport.eventually("the read to block") { await sim.statistics().blockedReads == 1 }
            first.disconnect()
            let second = try RawClient(sim.listenAddress)
            let resumed = try #require(try await second.handshake(token: token).reply)
            #expect(try resumed.fields.bool(ThinKey.Field.resumed))
            let replayID = try await second.submit(ThinKey.Request.startResendingEncryptedMessage, fields)
            try await TestSupport.eventually("a second ARQ") { await sim.statistics().inFlightOperations == 2 }
            #expect(await sim.statistics().duplicatedReplays == 1)
            _ = try await second.submit(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelope.hash))])
            let cancelled = try await second.waitFor(ThinKey.Reply.startResendingEncryptedMessage)
            #expect(try cancelled.fields.queryID() == replayID && cancelled.fields.errorCode() == 24)
            #expect(await sim.statistics().inFlightOperations == 1)  // the original still runs
            // A second cancel finds nothing; the original completes once the box is written.
            _ = try await second.request(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelope.hash))])
            #expect(try await stream.write(writer, stream.first, Array("both".utf8)) == 0)
            let reply = try await second.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: originalID)
            #expect(try reply.fields.errorCode() == 0 && reply.fields.optionalBytes(ThinKey.Field.plaintext) == Array("both".utf8))
        }
    }

    @Test func expiredBoxesReadAsBoxIDNotFoundAndCanBeWrittenAgain() async throws {
        var configuration = TestSupport.configuration()
        configuration.boxTTL = .seconds(2)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try await Self.client(sim)
            let stream = try await Stream(client)
            #expect(try await stream.write(client, stream.first, Array("old".utf8), noIdempotent: true) == 0)
            #expect(try await stream.read(client, stream.first).plaintext == Array("old".utf8))
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await stream.read(client, stream.first).code == ReplicaErrorCode.boxIDNotFound.rawValue)
            #expect(await sim.statistics().expiredBoxReads == 1)
            #expect(try await stream.write(client, stream.first, Array("new".utf8), noIdempotent: true) == 0)
            #expect(try await stream.read(client, stream.first).plaintext == Array("new".utf8))
        }
    }

    @Test func aWriteCapThatDoesNotMatchTheEnvelopeIsNotChecked() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try await Self.client(sim)
            let a = try await Stream(client)
            let b = try await Stream(client)
            let envelope = try await a.encryptWrite(client, a.first, Array("a".utf8))
            let reply = try await client.request(ThinKey.Request.startResendingEncryptedMessage, b.arqFields(envelope, write: true, index: nil, noIdempotent: true))
            #expect(try reply.errorCode() == 0)
            #expect(try await a.read(client, a.first).plaintext == Array("a".utf8))
        }
    }

    @Test func profilesAndModelFlagsParseOnTheCommandLine() async throws {
        let help = try await ProductProcess.run("kpclientd-sim", ["--help"], timeout: .seconds(20))
        let text = help.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(text.contains("--profile mainnet (λP = 0.00025/ms: one send tick per 4 s on average) is the realistic profile"))
        #expect(text.contains("--courier-churn") && text.contains("--box-ttl") && text.contains("--send-rate"))
        let bad = try await ProductProcess.run("kpclientd-sim", ["--profile", "devnet"], timeout: .seconds(20))
        #expect(bad.status != 0 && bad.stderr.contains("want mainnet or testnet"))
        let both = try await ProductProcess.run("kpclientd-sim", ["--send-rate", "1", "--lambda-p", "0.001"], timeout: .seconds(20))
        let parsed = try await ProductProcess.run("kpclientd-sim", ["--profile", "testnet", "--courier-churn", "6/h", "--box-ttl", "7d", "--couriers", "0"], timeout: .seconds(20))
        #expect(parsed.status != 0 && parsed.stderr.contains("courier count"))
        #expect(both.status != 0 && both.stderr.contains("not both"))
    }
}
