import CBOR
import Testing

/// One example from RFC 8949 Appendix A.
struct Vector: Sendable, CustomTestStringConvertible {
    var hex: String
    var value: CBORValue
    /// Whether our deterministic encoder produces exactly these bytes (false for floats that
    /// the example encodes in half or single precision: we always write float64).
    var encodes: Bool = true

    var testDescription: String { hex }
}

private func text(_ s: String) -> CBORValue { .text(s) }

/// The RFC 8949 Appendix A examples in the subset we support.
let appendixA: [Vector] = [
    Vector(hex: "00", value: .unsigned(0)),
    Vector(hex: "01", value: .unsigned(1)),
    Vector(hex: "0a", value: .unsigned(10)),
    Vector(hex: "17", value: .unsigned(23)),
    Vector(hex: "1818", value: .unsigned(24)),
    Vector(hex: "1819", value: .unsigned(25)),
    Vector(hex: "1864", value: .unsigned(100)),
    Vector(hex: "1903e8", value: .unsigned(1000)),
    Vector(hex: "1a000f4240", value: .unsigned(1_000_000)),
    Vector(hex: "1b000000e8d4a51000", value: .unsigned(1_000_000_000_000)),
    Vector(hex: "1bffffffffffffffff", value: .unsigned(18_446_744_073_709_551_615)),
    Vector(hex: "c249010000000000000000", value: .tagged(2, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0]))),
    Vector(hex: "3bffffffffffffffff", value: .negative(UInt64.max)),
    Vector(hex: "c349010000000000000000", value: .tagged(3, .bytes([1, 0, 0, 0, 0, 0, 0, 0, 0]))),
    Vector(hex: "20", value: .int(-1)),
    Vector(hex: "29", value: .int(-10)),
    Vector(hex: "3863", value: .int(-100)),
    Vector(hex: "3903e7", value: .int(-1000)),
    Vector(hex: "f90000", value: .float(0.0), encodes: false),
    Vector(hex: "f98000", value: .float(-0.0), encodes: false),
    Vector(hex: "f93c00", value: .float(1.0), encodes: false),
    Vector(hex: "fb3ff199999999999a", value: .float(1.1)),
    Vector(hex: "f93e00", value: .float(1.5), encodes: false),
    Vector(hex: "f97bff", value: .float(65504.0), encodes: false),
    Vector(hex: "fa47c35000", value: .float(100_000.0), encodes: false),
    Vector(hex: "fa7f7fffff", value: .float(3.4028234663852886e+38), encodes: false),
    Vector(hex: "fb7e37e43c8800759c", value: .float(1.0e+300)),
    Vector(hex: "f90001", value: .float(5.960464477539063e-8), encodes: false),
    Vector(hex: "f90400", value: .float(0.00006103515625), encodes: false),
    Vector(hex: "f9c400", value: .float(-4.0), encodes: false),
    Vector(hex: "fbc010666666666666", value: .float(-4.1)),
    Vector(hex: "f97c00", value: .float(.infinity), encodes: false),
    Vector(hex: "f9fc00", value: .float(-.infinity), encodes: false),
    Vector(hex: "fa7f800000", value: .float(.infinity), encodes: false),
    Vector(hex: "faff800000", value: .float(-.infinity), encodes: false),
    Vector(hex: "fb7ff0000000000000", value: .float(.infinity)),
    Vector(hex: "fbfff0000000000000", value: .float(-.infinity)),
    Vector(hex: "f4", value: .bool(false)),
    Vector(hex: "f5", value: .bool(true)),
    Vector(hex: "f6", value: .null),
    Vector(hex: "f7", value: .undefined),
    Vector(hex: "c074323031332d30332d32315432303a30343a30305a", value: .tagged(0, text("2013-03-21T20:04:00Z"))),
    Vector(hex: "c11a514b67b0", value: .tagged(1, .unsigned(1_363_896_240))),
    Vector(hex: "c1fb41d452d9ec200000", value: .tagged(1, .float(1_363_896_240.5))),
    Vector(hex: "d74401020304", value: .tagged(23, .bytes([1, 2, 3, 4]))),
    Vector(hex: "d818456449455446", value: .tagged(24, .bytes([0x64, 0x49, 0x45, 0x54, 0x46]))),
    Vector(
        hex: "d82076687474703a2f2f7777772e6578616d706c652e636f6d",
        value: .tagged(32, text("http://www.example.com"))),
    Vector(hex: "40", value: .bytes([])),
    Vector(hex: "4401020304", value: .bytes([1, 2, 3, 4])),
    Vector(hex: "60", value: text("")),
    Vector(hex: "6161", value: text("a")),
    Vector(hex: "6449455446", value: text("IETF")),
    Vector(hex: "62225c", value: text("\"\\")),
    Vector(hex: "62c3bc", value: text("\u{00fc}")),
    Vector(hex: "63e6b0b4", value: text("\u{6c34}")),
    Vector(hex: "64f0908591", value: text("\u{10151}")),
    Vector(hex: "80", value: .array([])),
    Vector(hex: "83010203", value: .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
    Vector(
        hex: "8301820203820405",
        value: .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])),
    Vector(
        hex: "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
        value: .array((1...25).map { .unsigned(UInt64($0)) })),
    Vector(hex: "a0", value: .map([])),
    Vector(
        hex: "a201020304",
        value: .map([CBORMapEntry(.unsigned(1), .unsigned(2)), CBORMapEntry(.unsigned(3), .unsigned(4))])),
    Vector(
        hex: "a26161016162820203",
        value: .textMap(["a": .unsigned(1), "b": .array([.unsigned(2), .unsigned(3)])])),
    Vector(hex: "826161a161626163", value: .array([text("a"), .textMap(["b": text("c")])])),
    Vector(
        hex: "a56161614161626142616361436164614461656145",
        value: .textMap(["a": text("A"), "b": text("B"), "c": text("C"), "d": text("D"), "e": text("E")])),
]

/// The Appendix A examples that use indefinite lengths, which we reject.
let appendixAIndefinite: [String] = [
    "5f42010243030405ff",
    "7f657374726561646d696e67ff",
    "9fff",
    "9f018202039f0405ffff",
    "9f01820203820405ff",
    "83018202039f0405ff",
    "83019f0203ff820405",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    "bf61610161629f0203ffff",
    "826161bf61626163ff",
    "bf6346756ef563416d7421ff",
]

@Suite("RFC 8949 Appendix A")
struct RFC8949VectorTests {
    @Test("decodes", arguments: appendixA)
    func decodes(_ vector: Vector) throws {
        let decoded = try CBORDecoder.decode(hex(vector.hex))
        #expect(decoded == vector.value)
        // -0.0 == 0.0 in Swift, so check the sign separately.
        if case .float(let expected) = vector.value, case .float(let actual) = decoded {
            #expect(expected.sign == actual.sign)
        }
    }

    @Test("encodes", arguments: appendixA.filter(\.encodes))
    func encodes(_ vector: Vector) {
        #expect(hexString(vector.value.encoded()) == vector.hex)
        #expect(vector.value.encodedLength == vector.hex.count / 2)
    }

    @Test("NaN in half, single and double precision decodes to NaN")
    func nan() throws {
        for input in ["f97e00", "fa7fc00000", "fb7ff8000000000000"] {
            let value = try CBORDecoder.decode(hex(input))
            let double = try #require(value.double)
            #expect(double.isNaN, "\(input)")
        }
        #expect(hexString(CBORValue.float(.nan).encoded()) == "fb7ff8000000000000")
    }

    @Test("floats are always written as float64")
    func floatsAsDouble() {
        #expect(hexString(CBORValue.float(1.5).encoded()) == "fb3ff8000000000000")
        #expect(hexString(CBORValue.float(0).encoded()) == "fb0000000000000000")
    }

    @Test("indefinite-length items are rejected as unsupported", arguments: appendixAIndefinite)
    func indefinite(_ input: String) {
        let error = decodeError(hex(input))
        #expect(error?.code == .unsupported)
    }

    @Test("unassigned simple values are rejected as unsupported")
    func simpleValues() {
        #expect(decodeError(hex("f0"))?.code == .unsupported)  // simple(16)
        #expect(decodeError(hex("f8ff"))?.code == .unsupported)  // simple(255)
        #expect(decodeError(hex("e0"))?.code == .unsupported)  // simple(0)
    }

    @Test("the Go stream frame vector decodes to four text-keyed pairs and re-encodes identically")
    func goFrameVector() throws {
        let bytes = hex("a4645479706500624964006341636b1bffffffffffffffff675061796c6f61644568656c6c6f")
        let value = try CBORDecoder.decode(bytes)
        let entries = try #require(value.mapEntries)
        #expect(entries.map(\.key) == [.text("Type"), .text("Id"), .text("Ack"), .text("Payload")])
        #expect(value["Type"] == .unsigned(0))
        #expect(value["Id"] == .unsigned(0))
        #expect(value["Ack"] == .unsigned(UInt64.max))
        #expect(value["Payload"] == .bytes(Array("hello".utf8)))
        #expect(value.encoded() == bytes)

        let built = CBORValue.textMap([
            "Type": .unsigned(0), "Id": .unsigned(0), "Ack": .unsigned(.max), "Payload": .bytes(Array("hello".utf8)),
        ])
        #expect(built.encoded() == bytes)
    }

    @Test("the second Go stream frame vector round-trips")
    func goFrameVector2() throws {
        let bytes = hex("a464547970650162496419012c6341636b05675061796c6f616440")
        let value = try CBORDecoder.decode(bytes)
        #expect(value == .textMap(["Type": .unsigned(1), "Id": .unsigned(300), "Ack": .unsigned(5), "Payload": .bytes([])]))
        #expect(value.encoded() == bytes)
    }

    @Test("one-byte tags 6...20, which libcbor 0.8 refuses, decode")
    func smallTags() throws {
        for tag in UInt64(6)...20 {
            let value = CBORValue.tagged(tag, .unsigned(7))
            let bytes = value.encoded()
            #expect(bytes == [0xc0 + UInt8(tag), 0x07])
            #expect(try CBORDecoder.decode(bytes) == value)
        }
    }
}
