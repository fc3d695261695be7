import CBOR
import Testing

/// Generates random values covering every case, with heads of every width.
struct ValueGenerator {
    var rng: SplitMix64

    mutating func integerArgument() -> UInt64 {
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: return UInt64.random(in: 0..<24, using: &rng)
        case 1: return UInt64.random(in: 24...0xff, using: &rng)
        case 2: return UInt64.random(in: 0x100...0xffff, using: &rng)
        case 3: return UInt64.random(in: 0x1_0000...0xffff_ffff, using: &rng)
        case 4: return UInt64.random(in: 0x1_0000_0000...UInt64.max, using: &rng)
        default: return [0, 23, 24, 255, 256, 65535, 65536, 0xffff_ffff, 0x1_0000_0000, .max].randomElement(using: &rng)!
        }
    }

    mutating func length() -> Int {
        Int.random(in: 0..<8, using: &rng) == 0 ? Int.random(in: 24..<400, using: &rng) : Int.random(in: 0..<24, using: &rng)
    }

    mutating func text() -> String {
        let alphabet: [Unicode.Scalar] = ["a", "Z", "0", " ", "\"", "\\", "\u{0}", "\u{7f}", "\u{e9}", "\u{6c34}", "\u{10151}", "\u{1f600}"]
        var string = ""
        for _ in 0..<length() {
            string.unicodeScalars.append(alphabet.randomElement(using: &rng)!)
        }
        return string
    }

    mutating func float() -> Double {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return [0.0, -0.0, 1.0, -1.5, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude].randomElement(using: &rng)!
        case 1: return Double(Int32.random(in: .min ... .max, using: &rng)) / 8
        default:
            var value: Double
            repeat { value = Double(bitPattern: rng.next()) } while value.isNaN
            return value
        }
    }

    mutating func value(depth: Int) -> CBORValue {
        let choice = Int.random(in: 0..<(depth > 0 ? 12 : 9), using: &rng)
        switch choice {
        case 0: return .unsigned(integerArgument())
        case 1: return .negative(integerArgument())
        case 2: return .bytes((0..<length()).map { _ in UInt8.random(in: 0...255, using: &rng) })
        case 3: return .text(text())
        case 4: return .bool(Bool.random(using: &rng))
        case 5: return .null
        case 6: return .undefined
        case 7: return .float(float())
        case 8: return .tagged(integerArgument(), .unsigned(integerArgument()))
        case 9:
            let count = Int.random(in: 0..<6, using: &rng)
            return .array((0..<count).map { _ in value(depth: depth - 1) })
        case 10:
            var entries: [CBORMapEntry] = []
            for _ in 0..<Int.random(in: 0..<6, using: &rng) {
                let key = value(depth: depth - 1)
                if !entries.contains(where: { $0.key == key }) {
                    entries.append(CBORMapEntry(key, value(depth: depth - 1)))
                }
            }
            return .map(entries)
        default:
            return .tagged(integerArgument(), value(depth: depth - 1))
        }
    }
}

@Suite("CBOR round trips")
struct CBORPropertyTests {
    @Test("random values encode, decode and re-encode identically")
    func randomRoundTrips() throws {
        var generator = ValueGenerator(rng: SplitMix64(seed: 0x5eed_cb08))
        for _ in 0..<2_000 {
            let value = generator.value(depth: 4)
            let bytes = value.encoded()
            #expect(bytes.count == value.encodedLength)
            var appended: [UInt8] = [0x99]
            value.encode(into: &appended)
            #expect(Array(appended.dropFirst()) == bytes)

            let decoded = try CBORDecoder.decode(bytes)
            #expect(decoded == value)
            // Bytes compare signs of zero too, which `==` on Double does not.
            #expect(decoded.encoded() == bytes)

            let padded = bytes + [0x00, 0xff, 0x1c]
            let prefix = try CBORDecoder.decodePrefix(padded)
            #expect(prefix.consumed == bytes.count)
            #expect(prefix.value == value)
        }
    }

    @Test("nested values up to the depth limit round-trip")
    func nested() throws {
        var value = CBORValue.text("core")
        for level in 0..<32 {
            switch level % 3 {
            case 0: value = .array([.unsigned(UInt64(level)), value])
            case 1: value = .map([CBORMapEntry(.int(-Int64(level)), value)])
            default: value = .tagged(UInt64(level), value)
            }
        }
        let bytes = value.encoded()
        #expect(try CBORDecoder.decode(bytes) == value)
        #expect(decodeError(bytes, limits: .init(maxDepth: 31))?.code == .nestingTooDeep)
    }

    @Test("mutated encodings never crash, and whatever decodes round-trips")
    func mutations() throws {
        var generator = ValueGenerator(rng: SplitMix64(seed: 42))
        var rng = SplitMix64(seed: 7)
        var decodedCount = 0
        for _ in 0..<2_000 {
            var bytes = generator.value(depth: 3).encoded()
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let index = Int.random(in: 0..<bytes.count, using: &rng)
                bytes[index] = UInt8.random(in: 0...255, using: &rng)
            }
            guard let value = try? CBORDecoder.decode(bytes, limits: .init(maxDepth: 8, maxItems: 500)) else { continue }
            decodedCount += 1
            let again = value.encoded()
            #expect(try CBORDecoder.decode(again).encoded() == again)
        }
        #expect(decodedCount > 0)
    }
}

@Suite("Fuzzer regressions")
struct FuzzRegressionTests {
    /// fuzz-cbor crash-d43217e1: a half float re-encodes as a longer float64. The harness wrongly
    /// required the re-encoding to be no longer than the input; the decoder was right.
    @Test("a half float with a trailing byte decodes by prefix and re-encodes as float64")
    func halfFloatGrows() throws {
        let input = hex("f9 e4 f9 5b")
        let (value, consumed) = try CBORDecoder.decodePrefix(input)
        #expect(consumed == 3)
        #expect(value == .float(-1273.0))
        let encoded = value.encoded()
        #expect(encoded.count == 9)
        #expect(try CBORDecoder.decode(encoded) == value)
        #expect(decodeError(input)?.code == .trailingBytes)
    }
}
