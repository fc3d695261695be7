import CBOR
import IPC
import Testing

@Suite struct RoundTripTests {
    @Test(arguments: Fixtures.requests)
    func requestRoundTrips(_ request: IPCRequest) throws {
        let message = IPCRequestMessage(id: 42, request: request)
        let payload = message.encoded()
        let decoded = try IPCRequestMessage(decoding: payload)
        #expect(decoded == message)
        #expect(decoded.encoded() == payload, "the encoding is deterministic")
        #expect(message.framed() == IPCFraming.frame(payload))
        #expect(CBORValue.text(request.operation) == (try CBORDecoder.decode(payload))["op"])
    }

    @Test func requestIDsOfEverySize() throws {
        for id: UInt64 in [0, 23, 24, 255, 256, 65_535, 65_536, 1 << 32, UInt64.max] {
            let message = IPCRequestMessage(id: id, request: .list)
            #expect(try IPCRequestMessage(decoding: message.encoded()) == message)
        }
    }

    @Test(arguments: Fixtures.serverMessages)
    func serverMessageRoundTrips(_ message: IPCServerMessage) throws {
        let payload = message.encoded()
        let decoded = try IPCServerMessage(decoding: payload)
        #expect(decoded == message)
        #expect(decoded.encoded() == payload)
    }

    @Test func everyRequestKindIsCovered() {
        let operations = Set(Fixtures.requests.map(\.operation))
        #expect(operations.count == 14)
        #expect(Set(Fixtures.replies.map(\.kind)) == Set(IPCReplyKind.allCases))
        #expect(Set(Fixtures.events.map(\.kind)).count == 5)
        #expect(Set(Fixtures.requests.map(\.replyKind)) == Set(IPCReplyKind.allCases))
    }

    @Test func longTextIsTruncatedOnTheWire() throws {
        let long = String(repeating: "é", count: IPCLimits.maxTextLength)  // 2 bytes each
        let message = IPCServerMessage.reply(id: 1, .failure(IPCError(.internal, long)))
        guard case .reply(_, .failure(let error)) = try IPCServerMessage(decoding: message.encoded()) else {
            Issue.record("not an error reply")
            return
        }
        #expect(error.message.utf8.count == IPCLimits.maxTextLength)
        #expect(error.message.allSatisfy { $0 == "é" })
    }

    @Test func errorCodesAreStable() {
        let expected = [
            "malformed", "frameTooLarge", "unsupportedVersion", "helloRequired", "unknownOperation", "invalidArgument",
            "invalidName", "nameInUse", "noSuchStream", "invalidAddress", "wrongOffset", "busy", "closed",
            "readOnly", "writeOnly", "streamFailed", "damaged", "tooManyRequests", "shuttingDown", "permissionDenied",
            "internal", "kpclientdUnavailable",
        ]
        #expect(IPCError.Code.allKnown.map(\.name) == expected)
        #expect(IPCError.Code.allKnown.map(\.number) == Array(1...22))
        for code in IPCError.Code.allKnown {
            #expect(IPCError.Code(name: code.name) == code)
            #expect(IPCError.Code(number: code.number) == code)
        }
        #expect(IPCError.Code.wrongOffset.number == 11)
        #expect(IPCError.Code(number: 500).name == "unknown500")
        #expect(!IPCError.Code(number: 500).isKnown)
        #expect(IPCError.Code(name: "nope") == nil)
        #expect("\(IPCError(.busy, "full"))" == "IPC error busy(12): full")
    }
}
