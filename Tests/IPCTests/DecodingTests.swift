import CBOR
import IPC
import Testing

/// Hostile and broken payloads: every failure is an `IPCError` with the right code, the field
/// named, and the request id when it could be read.
@Suite struct DecodingTests {
    static func request(_ pairs: [(String, CBORValue)]) -> [UInt8] { CBORValue.textMap(pairs).encoded() }

    static func requestError(_ payload: [UInt8]) -> IPCError? {
        do {
            _ = try IPCRequestMessage(decoding: payload)
            return nil
        } catch {
            return error
        }
    }

    static func serverError(_ payload: [UInt8]) -> IPCError? {
        do {
            _ = try IPCServerMessage(decoding: payload)
            return nil
        } catch {
            return error
        }
    }

    @Test func garbageIsMalformedWithoutID() {
        for payload: [UInt8] in [[], [0xff], [0x1c], [0xa1, 0x62, 0x69], [0xbf, 0xff], Array("hello".utf8), [0xa0, 0x00]] {
            let error = Self.requestError(payload)
            #expect(error?.code == .malformed, "\(payload)")
            #expect(error?.requestID == nil)
            #expect(Self.serverError(payload)?.code == .malformed)
        }
    }

    @Test func nonMapIsMalformed() {
        for value: CBORValue in [.unsigned(1), .array([.unsigned(1)]), .text("op"), .null, .bytes([1])] {
            #expect(Self.requestError(value.encoded())?.code == .malformed)
            #expect(Self.serverError(value.encoded())?.code == .malformed)
        }
    }

    @Test func oversizePayloadIsFrameTooLarge() {
        let payload = Self.request([("id", .unsigned(1)), ("op", .text("list")), ("pad", .bytes(Array(repeating: 0, count: IPCLimits.maxFrameSize)))])
        #expect(Self.requestError(payload)?.code == .frameTooLarge)
    }

    @Test func missingOrMistypedIDHasNoRequestID() {
        for pairs: [(String, CBORValue)] in [[("op", .text("list"))], [("id", .text("1")), ("op", .text("list"))], [("id", .int(-1)), ("op", .text("list"))]] {
            let error = Self.requestError(Self.request(pairs))
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("id") == true)
            #expect(error?.requestID == nil)
        }
        // A non-text key named like id does not count.
        let payload = CBORValue.map([CBORMapEntry(.unsigned(0), .unsigned(1)), CBORMapEntry(.text("op"), .text("list"))]).encoded()
        #expect(Self.requestError(payload)?.code == .invalidArgument)
    }

    @Test func unknownOperationNamesItAndKeepsTheID() {
        let error = Self.requestError(Self.request([("id", .unsigned(9)), ("op", .text("explode"))]))
        #expect(error?.code == .unknownOperation)
        #expect(error?.message.contains("explode") == true)
        #expect(error?.requestID == 9)
        let long = Self.requestError(Self.request([("id", .unsigned(9)), ("op", .text(String(repeating: "x", count: 1000)))]))
        #expect(long?.code == .unknownOperation)
        #expect(long?.requestID == 9)
        #expect(long?.message.contains("xxxx") == false)
    }

    @Test func missingAndMistypedFieldsAreNamed() {
        let cases: [([(String, CBORValue)], String)] = [
            ([("op", .text("hello")), ("max_version", .unsigned(1))], "min_version"),
            ([("op", .text("hello")), ("min_version", .int(-1)), ("max_version", .unsigned(1))], "min_version"),
            ([("op", .text("hello")), ("min_version", .unsigned(1)), ("max_version", .unsigned(1)), ("client", .unsigned(1))], "client"),
            ([("op", .unsigned(3))], "op"),
            ([("op", .text("create")), ("name", .text("a")), ("mode", .text("broadcast"))], "mode"),
            ([("op", .text("create")), ("name", .text("a"))], "mode"),
            ([("op", .text("create")), ("name", .bytes([0x61])), ("mode", .text("stream"))], "name"),
            ([("op", .text("status"))], "name"),
            ([("op", .text("join")), ("name", .text("a"))], "address"),
            ([("op", .text("join")), ("name", .text("a")), ("address", .text(String(repeating: "a", count: IPCLimits.maxAddressLength + 1)))], "address"),
            ([("op", .text("address")), ("name", .text("a")), ("read_only", .unsigned(1))], "read_only"),
            ([("op", .text("close")), ("name", .text("a")), ("wait", .text("yes"))], "wait"),
            ([("op", .text("write")), ("name", .text("a")), ("data", .bytes([]))], "offset"),
            ([("op", .text("write")), ("name", .text("a")), ("offset", .unsigned(0)), ("data", .text("abc"))], "data"),
            ([("op", .text("write")), ("name", .text("a")), ("offset", .unsigned(0)), ("data", .bytes(Array(repeating: 0, count: IPCLimits.maxChunk + 1)))], "data"),
            ([("op", .text("read")), ("name", .text("a")), ("offset", .unsigned(0)), ("max_length", .unsigned(0))], "max_length"),
            ([("op", .text("read")), ("name", .text("a")), ("offset", .unsigned(0)), ("max_length", .unsigned(UInt64(IPCLimits.maxChunk) + 1))], "max_length"),
            ([("op", .text("read")), ("name", .text("a")), ("offset", .float(1)), ("max_length", .unsigned(5))], "offset"),
            ([("op", .text("consume")), ("name", .text("a"))], "offset"),
            ([("op", .text("subscribe")), ("names", .text("a"))], "names"),
            ([("op", .text("subscribe")), ("names", .array([.unsigned(1)]))], "names"),
            ([("op", .text("subscribe")), ("names", .array(Array(repeating: .text("a"), count: IPCLimits.maxSubscribeNames + 1)))], "names"),
        ]
        for (pairs, field) in cases {
            let error = Self.requestError(Self.request([("id", .unsigned(77))] + pairs))
            #expect(error?.code == .invalidArgument, "\(pairs.map(\.0)) → \(String(describing: error))")
            #expect(error?.message.contains("field \(field) ") == true, "\(String(describing: error)) should name \(field)")
            #expect(error?.requestID == 77)
        }
    }

    @Test func invalidNamesInRequestsAreInvalidName() {
        for bad in ["", "-a", ".a", "a b", "a/b", "ü", String(repeating: "a", count: 65), String(repeating: "a", count: 10_000)] {
            let error = Self.requestError(Self.request([("id", .unsigned(5)), ("op", .text("status")), ("name", .text(bad))]))
            #expect(error?.code == .invalidName, "\(bad.prefix(20))")
            #expect(error?.requestID == 5)
        }
        let error = Self.requestError(Self.request([("id", .unsigned(5)), ("op", .text("subscribe")), ("names", .array([.text("ok"), .text("not ok")]))]))
        #expect(error?.code == .invalidName)
        #expect(error?.requestID == 5)
    }

    @Test func unknownKeysAndNullsAreIgnored() throws {
        let payload = Self.request([
            ("future", .array([.unsigned(1)])), ("id", .unsigned(3)), ("op", .text("close")), ("name", .text("chat")),
            ("wait", .null), ("x-extension", .textMap([("a", .bool(true))])),
        ])
        let message = try IPCRequestMessage(decoding: payload)
        #expect(message == IPCRequestMessage(id: 3, request: .close(name: Fixtures.chat, wait: false)))
        // Booleans default to false; a non-text key is ignored too.
        let withIntKey = CBORValue.map([
            CBORMapEntry(.text("id"), .unsigned(4)), CBORMapEntry(.text("op"), .text("address")),
            CBORMapEntry(.text("name"), .text("chat")), CBORMapEntry(.unsigned(1), .text("ignored")),
        ]).encoded()
        #expect(try IPCRequestMessage(decoding: withIntKey).request == .address(name: Fixtures.chat, readOnly: false))
        // subscribe without names (or null) means every stream.
        #expect(try IPCRequestMessage(decoding: Self.request([("id", .unsigned(1)), ("op", .text("subscribe")), ("names", .null)])).request == .subscribe(names: nil))

        let reply = CBORValue.textMap([("id", .unsigned(8)), ("reply", .text("written")), ("accepted", .unsigned(1)), ("offset", .unsigned(2)), ("new", .null), ("later", .text("x"))])
        #expect(try IPCServerMessage(decoding: reply.encoded()) == .reply(id: 8, .success(.written(accepted: 1, offset: 2))))
        let event = CBORValue.textMap([("event", .text("peer_closed")), ("name", .text("chat")), ("id", .unsigned(1)), ("extra", .unsigned(2))])
        #expect(try IPCServerMessage(decoding: event.encoded()) == .event(.peerClosed(name: Fixtures.chat)))
    }

    @Test func duplicateKeysAreMalformed() {
        let payload = CBORValue.map([CBORMapEntry(.text("id"), .unsigned(1)), CBORMapEntry(.text("id"), .unsigned(2))]).encoded()
        #expect(Self.requestError(payload)?.code == .malformed)
    }

    @Test func deepNestingIsMalformed() {
        var value = CBORValue.unsigned(1)
        for _ in 0..<10 { value = .array([value]) }
        #expect(Self.requestError(Self.request([("id", .unsigned(1)), ("op", .text("list")), ("x", value)]))?.code == .malformed)
    }

    @Test func serverMessagesRejectBadFields() {
        let cases: [(CBORValue, IPCError.Code, UInt64?)] = [
            (.textMap([("id", .unsigned(1)), ("reply", .text("teleport"))]), .unknownOperation, 1),
            (.textMap([("id", .unsigned(1))]), .invalidArgument, 1),
            (.textMap([("id", .unsigned(1)), ("reply", .text("written")), ("accepted", .unsigned(1))]), .invalidArgument, 1),
            (.textMap([("id", .unsigned(2)), ("reply", .text("data")), ("offset", .unsigned(0)), ("data", .bytes(Array(repeating: 0, count: IPCLimits.maxChunk + 1))), ("end", .bool(false))]), .invalidArgument, 2),
            (.textMap([("id", .unsigned(2)), ("reply", .text("hello")), ("version", .unsigned(1)), ("daemon", .text("d")), ("instance", .bytes([1, 2])), ("features", .array([]))]), .invalidArgument, 2),
            (.textMap([("id", .unsigned(2)), ("reply", .text("status")), ("stream", .unsigned(1))]), .invalidArgument, 2),
            (.textMap([("id", .unsigned(2)), ("error", .textMap([("message", .text("m"))]))]), .invalidArgument, 2),
            (.textMap([("id", .unsigned(2)), ("reply", .text("list")), ("streams", .array([.textMap([("name", .text("a"))])]))]), .invalidArgument, 2),
            (.textMap([("event", .text("meteor"))]), .unknownOperation, nil),
            (.textMap([("event", .text("data_available")), ("name", .text("a"))]), .invalidArgument, nil),
            (.textMap([("event", .text("data_available")), ("name", .text("-a")), ("offset", .unsigned(1))]), .invalidName, nil),
            (.textMap([("goodbye", .text("bye"))]), .invalidArgument, nil),
            (.textMap([("hello", .unsigned(1))]), .malformed, nil),
        ]
        for (value, code, id) in cases {
            let error = Self.serverError(value.encoded())
            #expect(error?.code == code, "\(value) → \(String(describing: error))")
            #expect(error?.requestID == id)
        }
        let nested = Self.serverError(CBORValue.textMap([("id", .unsigned(2)), ("reply", .text("list")), ("streams", .array([.textMap([("name", .text("a"))])]))]).encoded())
        #expect(nested?.message.contains("streams[0].role") == true, "\(String(describing: nested))")
    }
}
