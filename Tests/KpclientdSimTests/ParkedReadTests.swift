import CBOR
import Testing
import ThinWire

@testable import KpclientdSim

/// Reads of boxes not yet written wait as small records, not suspended tasks (unpaced model).
struct ParkedReadTests {
    @Test("a waiting read parks without a task and is answered when its box is written")
    func parkedReadsAreAnsweredOnWrite() async throws {
        try await TestSupport.withSimulator { sim in
            let writer = try RawClient(sim.listenAddress)
            try await writer.handshake(token: TestSupport.random(16))
            let reader = try RawClient(sim.listenAddress)
            try await reader.handshake(token: TestSupport.random(16))
            let stream = try await Stream(writer)
            let index = stream.first
            // Two waiting reads of the same box: one with its index, one without (raw payload).
            let withIndex = try await stream.encryptRead(reader, index)
            let withIndexID = try await reader.submit(
                ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(withIndex, write: false, index: index))
            let raw = try await stream.encryptRead(reader, index)
            let rawID = try await reader.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(raw, write: false, index: nil))
            try await TestSupport.eventually("both reads to park") { await sim.statistics().blockedReads == 2 }
            #expect(await sim.arqTasks() == 0)
            #expect(await sim.statistics().inFlightOperations == 2)

            #expect(try await stream.write(writer, index, Array("hello".utf8), noIdempotent: true) == 0)
            var replies: [[UInt8]: ThinFields] = [:]
            while replies.count < 2 {
                let reply = try #require(try await reader.next())
                #expect(reply.key == ThinKey.Reply.startResendingEncryptedMessage)
                replies[try reply.fields.queryID()] = reply.fields
            }
            let first = try #require(replies[withIndexID])
            #expect(try first.errorCode() == 0 && first.optionalBytes(ThinKey.Field.plaintext) == Array("hello".utf8))
            let second = try #require(replies[rawID])
            let padded = try #require(try second.optionalBytes(ThinKey.Field.plaintext))
            #expect(try second.errorCode() == 0)
            #expect(padded.count == 4 + sim.pigeonholeGeometry.maxPlaintextPayloadLength)
            #expect(Array(padded[0..<4]) == [0, 0, 0, 5] && Array(padded[4..<9]) == Array("hello".utf8))
            let after = await sim.statistics()
            #expect(after.blockedReads == 0 && after.inFlightOperations == 0)
        }
    }

    @Test("a parked read leaves its box when cancelled or when its session ends")
    func parkedReadsLeaveOnCancelAndClose() async throws {
        try await TestSupport.withSimulator { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client)
            let envelope = try await stream.encryptRead(client, stream.first)
            _ = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
            let next = try await Stream.next(client, stream.first)
            let other = try await stream.encryptRead(client, next)
            _ = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(other, write: false, index: next))
            try await TestSupport.eventually("the reads to park") { await sim.statistics().blockedReads == 2 }
            _ = try await client.request(ThinKey.Request.cancelResendingEncryptedMessage, [(ThinKey.Field.envelopeHash, .bytes(envelope.hash))])
            try await TestSupport.eventually("the cancelled read to leave") { await sim.statistics().blockedReads == 1 }
            #expect(await sim.statistics().inFlightOperations == 1)
            try await client.send(ThinMessage(ThinKey.Request.thinClose, body: .map([])))
            try await TestSupport.eventually("the session's read to leave") { await sim.statistics().blockedReads == 0 }
            #expect(await sim.statistics().inFlightOperations == 0)
        }
    }
}
