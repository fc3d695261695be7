import CBOR
import Testing
import ThinWire

struct ThinWireFramingTests {
    @Test func frameHasBigEndianLengthPrefixAndCBORBody() throws {
        let message = ThinMessage(ThinKey.Request.thinClose, body: .map([]))
        let frame = message.frame
        #expect(Array(frame[0..<4]) == [0, 0, 0, UInt8(frame.count - 4)])
        let body = Array(frame[4...])
        #expect(try ThinFrame.decodeBody(body) == message.value)
    }

    @Test func decoderReassemblesFramesSplitAcrossReads() throws {
        let a = ThinMessage("a_reply", [("query_id", .bytes(Array(repeating: 1, count: 16))), ("error_code", .unsigned(0))])
        let b = ThinMessage("b_event", [("payload", .bytes(Array(repeating: 7, count: 3000)))])
        let stream = a.frame + b.frame
        for chunkSize in [1, 2, 3, 5, 7, 4096] {
            var decoder = ThinFrameDecoder()
            var decoded: [CBORValue] = []
            var offset = 0
            while offset < stream.count {
                let end = min(stream.count, offset + chunkSize)
                decoder.append(stream[offset..<end])
                offset = end
                while let value = try decoder.nextValue() { decoded.append(value) }
            }
            #expect(decoded == [a.value, b.value], "chunk size \(chunkSize)")
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func decoderRejectsOversizedPrefixBeforeTheBodyArrives() throws {
        var decoder = ThinFrameDecoder()
        // 41 943 041 = cap + 1; only the prefix is supplied.
        decoder.append([0x02, 0x80, 0x00, 0x01])
        #expect(throws: ThinWireError.self) { _ = try decoder.nextFrameBody() }
        do {
            _ = try decoder.nextFrameBody()
            Issue.record("a failed decoder must keep failing")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func decoderAcceptsExactlyTheCapInThePrefix() throws {
        var decoder = ThinFrameDecoder()
        decoder.append([0x02, 0x80, 0x00, 0x00])
        #expect(try decoder.nextFrameBody() == nil)  // waiting for 40 MiB, not failing
    }

    @Test func decoderHonoursASmallerConfiguredCap() throws {
        var decoder = ThinFrameDecoder(maximumFrameLength: 10)
        decoder.append([0, 0, 0, 11])
        do {
            _ = try decoder.nextFrameBody()
            Issue.record("expected frameTooLarge")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
    }

    @Test func decoderSurfacesUndecodableCBOR() throws {
        var decoder = ThinFrameDecoder()
        decoder.append([0, 0, 0, 2, 0x5F, 0xFF] as [UInt8])  // indefinite bytes / break: not accepted
        do {
            _ = try decoder.nextValue()
            Issue.record("expected invalidCBOR")
        } catch {
            #expect(error.code == .invalidCBOR)
        }
        var truncated = ThinFrameDecoder()
        truncated.append([0, 0, 0, 3, 0x43, 0x01, 0x02] as [UInt8])  // bytes(3) with 2 bytes
        #expect(throws: ThinWireError.self) { _ = try truncated.nextValue() }
        var trailing = ThinFrameDecoder()
        trailing.append([0, 0, 0, 2, 0xF6, 0xF6] as [UInt8])  // two items in one frame
        #expect(throws: ThinWireError.self) { _ = try trailing.nextValue() }
    }

    @Test func frameBodyOverTheCapIsRejected() throws {
        #expect(throws: ThinWireError.self) {
            _ = try ThinFrame.frame(body: [UInt8](repeating: 0, count: ThinFrame.maximumLength + 1))
        }
        #expect(try ThinFrame.frame(body: [0xF6]) == [0, 0, 0, 1, 0xF6])
    }
}

struct ThinMessageTests {
    @Test func decodesOneKeyMap() throws {
        let value = CBORValue.textMap([("new_keypair_reply", .textMap([("query_id", .bytes(Array(repeating: 9, count: 16))), ("error_code", .unsigned(3))]))])
        let message = try ThinMessage(decoding: value)
        #expect(message.key == ThinKey.Reply.newKeypair)
        #expect(try message.fields.queryID() == Array(repeating: 9, count: 16))
        #expect(try message.fields.errorCode() == 3)
    }

    @Test func decodesGoStyleNullFilledMap() throws {
        var pairs: [(String, CBORValue)] = ThinKey.Request.all.map { ($0, CBORValue.null) }
        let inner = CBORValue.textMap([
            ("query_id", .bytes(Array(repeating: 1, count: 16))), ("seed", .bytes(Array(repeating: 2, count: 32))),
        ])
        pairs[5] = (ThinKey.Request.newKeypair, inner)
        let message = try ThinMessage(decoding: .textMap(pairs))
        #expect(message.key == ThinKey.Request.newKeypair)
        #expect(try message.fields.bytes(ThinKey.Field.seed, length: 32).count == 32)
    }

    @Test func rejectsAmbiguousEmptyAndNonMapMessages() {
        func code(_ value: CBORValue) -> ThinWireError.Code? {
            do { _ = try ThinMessage(decoding: value); return nil } catch { return error.code }
        }
        #expect(code(.textMap([("a", .map([])), ("b", .map([]))])) == .ambiguousMessage)
        #expect(code(.textMap([("a", .null), ("b", .undefined)])) == .noMessageKey)
        #expect(code(.map([])) == .noMessageKey)
        #expect(code(.array([])) == .notAMap)
    }

    @Test func emptyMapBodyCountsAsPresent() throws {
        let message = try ThinMessage(decoding: .textMap([("thin_close", .map([])), ("send_message", .null)]))
        #expect(message.key == ThinKey.Request.thinClose)
    }

    @Test func typedFieldsEnforceExactLengthsAndTypes() {
        let fields = ThinFields(
            .textMap([
                ("query_id", .bytes([1, 2, 3])), ("write_cap", .bytes(Array(repeating: 0, count: 168))),
                ("read_cap", .text("nope")), ("gone", .null), ("flag", .bool(true)), ("n", .unsigned(7)),
            ]),
            context: "test"
        )
        func code(_ body: () throws -> Void) -> ThinWireError.Code? {
            do { try body(); return nil } catch { return (error as? ThinWireError)?.code }
        }
        #expect(code { _ = try fields.queryID() } == .wrongLength)
        #expect(code { _ = try fields.bytes("write_cap", length: ThinSizes.writeCap) } == nil)
        #expect(code { _ = try fields.bytes("write_cap", length: ThinSizes.readCap) } == .wrongLength)
        #expect(code { _ = try fields.bytes("read_cap") } == .wrongType)
        #expect(code { _ = try fields.bytes("gone") } == .missingField)
        #expect(code { _ = try fields.bytes("absent") } == .missingField)
        #expect((try? fields.optionalBytes("gone", length: 16)) == .some(nil))
        #expect((try? fields.optionalBool("flag")) == .some(true))
        #expect((try? fields.uint("n")) == 7)
        #expect(code { _ = try fields.uint("flag") } == .wrongType)
    }

    @Test func capabilityLayoutSlicesAndCounter() {
        var index = [UInt8](repeating: 0, count: 104)
        index[0] = 0x01
        index[7] = 0x80
        #expect(CapabilityLayout.counter(ofIndex: index) == 0x8000_0000_0000_0001)
        #expect(CapabilityLayout.counter(ofIndex: [1, 2]) == nil)
        let writeCap = [UInt8](repeating: 5, count: 32) + [UInt8](repeating: 6, count: 32) + index
        #expect(CapabilityLayout.publicKey(ofWriteCap: writeCap) == [UInt8](repeating: 6, count: 32))
        #expect(CapabilityLayout.index(ofWriteCap: writeCap) == index)
    }
}

struct ThinWireErrorCodeTests {
    @Test func namesCoverBothNamespaces() {
        #expect(ThinClientErrorCode.startResendingCancelled.rawValue == 24)
        #expect(ThinClientErrorCode(rawValue: 32).name == "CourierInvalidEpoch")
        #expect(ThinClientErrorCode(rawValue: 33).isKnown == false)
        #expect(ReplicaErrorCode(rawValue: 11) == .tombstone)
        #expect(ReplicaErrorCode.boxAlreadyExists.name == "BoxAlreadyExists")
        #expect(ReplicaErrorCode.tombstone.isExpectedOutcome)
        #expect(!ReplicaErrorCode.databaseFailure.isExpectedOutcome)
    }

    @Test func startResendingCodesResolveTheCollision() {
        #expect(StartResendingErrorCode(rawValue: 0) == .success)
        #expect(StartResendingErrorCode(rawValue: 10) == .replica(.boxAlreadyExists))
        #expect(StartResendingErrorCode(rawValue: 3).ambiguousThinClientMeaning == .invalidRequest)
        #expect(StartResendingErrorCode(rawValue: 4).ambiguousThinClientMeaning == .internalError)
        #expect(StartResendingErrorCode(rawValue: 24) == .thinClient(.startResendingCancelled))
        #expect(StartResendingErrorCode(rawValue: 31).rawValue == 31)
    }
}

struct GeometryTests {
    @Test func defaultGeometryDerivesM1549() throws {
        let (sphinx, pigeonhole) = PigeonholeGeometry.simulatedPair()
        #expect(sphinx.userForwardPayloadLength == 2000)
        #expect(pigeonhole.maxPlaintextPayloadLength == 1549)
        #expect(pigeonhole.courierQueryReadLength == 2000)
        #expect(pigeonhole.courierQueryWriteLength == 2000)
        #expect(pigeonhole.courierQueryReplyReadLength == 1549 + 169)
        #expect(pigeonhole.courierQueryReplyWriteLength == 1549 + 169)
        #expect(pigeonhole.signatureSchemeName == "Ed25519")
        #expect(pigeonhole.nikeName == "CTIDH1024-X25519")
        #expect(sphinx.packetLength == sphinx.headerLength + sphinx.payloadTagLength + sphinx.forwardPayloadLength)
    }

    @Test func sphinxMapHasExactlyTheGoKeysAndRoundTrips() throws {
        let sphinx = SphinxGeometry.simulated(userForwardPayloadLength: 2000)
        let map = sphinx.cborValue
        let keys = map.mapEntries!.compactMap(\.key.text)
        #expect(keys == SphinxGeometry.integerKeys + ["NIKEName", "KEMName"])
        #expect(try SphinxGeometry(cbor: map) == sphinx)
        let decoded = try ThinFrame.decodeBody(Array(ThinFrame.encode(map)[4...]))
        #expect(try SphinxGeometry(cbor: decoded) == sphinx)
    }

    @Test func sphinxParsingRejectsMissingAndIgnoresUnknownKeys() throws {
        let entries = SphinxGeometry.simulated(userForwardPayloadLength: 100).cborValue.mapEntries!
        #expect(throws: ThinWireError.self) { _ = try SphinxGeometry(cbor: .map(Array(entries.dropFirst()))) }
        // A newer daemon's extra fields are ignored, as Go's decoder does.
        let extended = try SphinxGeometry(cbor: .map(entries + [CBORMapEntry(.text("Extra"), .unsigned(1))]))
        #expect(extended == SphinxGeometry.simulated(userForwardPayloadLength: 100))
        // The name keys may be omitted.
        #expect((try? SphinxGeometry(cbor: .map(Array(entries.prefix(12))))) != nil)
    }

    @Test func pigeonholeMapHasGoKeysAndOnlyMIsRequired() throws {
        let geometry = PigeonholeGeometry(derivedFrom: .simulated(userForwardPayloadLength: 3000))
        #expect(geometry.maxPlaintextPayloadLength == 3000 - 451)
        let keys = geometry.cborValue.mapEntries!.compactMap(\.key.text)
        #expect(keys == PigeonholeGeometry.integerKeys + ["NIKEName", "SignatureSchemeName"])
        #expect(try PigeonholeGeometry(cbor: geometry.cborValue) == geometry)
        let minimal = try PigeonholeGeometry(cbor: .textMap([("MaxPlaintextPayloadLength", .unsigned(10))]))
        #expect(minimal.maxPlaintextPayloadLength == 10)
        #expect(throws: ThinWireError.self) { _ = try PigeonholeGeometry(cbor: .textMap([("CourierQueryReadLength", .unsigned(1))])) }
        let extended = try PigeonholeGeometry(
            cbor: .textMap([("MaxPlaintextPayloadLength", .unsigned(10)), ("Bogus", .unsigned(1)), ("NewName", .text("x"))])
        )
        #expect(extended.maxPlaintextPayloadLength == 10)
    }
}
