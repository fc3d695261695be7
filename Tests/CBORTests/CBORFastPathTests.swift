import CBOR
import CCBOR
import Testing

/// The encoder's own head writer and the decoder's byte-wise check of ASCII map keys give the
/// same bytes and the same verdicts as libcbor's encoders and value comparison.
struct CBORFastPathTests {
    /// libcbor's encoding of one head or simple value, through `write`.
    private func libcbor(_ write: (UnsafeMutablePointer<UInt8>, Int) -> Int) -> [UInt8] {
        var scratch = [UInt8](repeating: 0, count: 16)
        let written = scratch.withUnsafeMutableBufferPointer { write($0.baseAddress!, $0.count) }
        return Array(scratch[0..<written])
    }

    @Test("heads, simple values and floats are the bytes libcbor's encoders write")
    func headsMatchLibcbor() {
        var generator = SplitMix64(seed: 6)
        var arguments: [UInt64] = [0, 1, 23, 24, 25, 0xff, 0x100, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, .max, .max - 1]
        for _ in 0..<500 { arguments.append(generator.next() >> (generator.next() % 64)) }
        for argument in arguments {
            #expect(CBORValue.unsigned(argument).encoded() == libcbor { cbor_encode_uint(argument, $0, $1) })
            #expect(CBORValue.negative(argument).encoded() == libcbor { cbor_encode_negint(argument, $0, $1) })
            #expect(CBORValue.tagged(argument, .null).encoded() == libcbor { cbor_encode_tag(argument, $0, $1) } + [0xf6])
        }
        for count in [0, 1, 23, 24, 255, 256, 70_000] {
            let bytes = [UInt8](repeating: 7, count: count)
            #expect(CBORValue.bytes(bytes).encoded() == libcbor { cbor_encode_bytestring_start(count, $0, $1) } + bytes)
            let text = String(repeating: "é", count: count / 2)
            #expect(CBORValue.text(text).encoded() == libcbor { cbor_encode_string_start(text.utf8.count, $0, $1) } + Array(text.utf8))
            let arrayHead = libcbor { cbor_encode_array_start(count, $0, $1) }
            #expect(CBORValue.array(Array(repeating: .null, count: count)).encoded() == arrayHead + [UInt8](repeating: 0xf6, count: count))
            let mapHead = libcbor { cbor_encode_map_start(count, $0, $1) }
            #expect(CBORValue.map(Array(repeating: CBORMapEntry(.null, .null), count: count)).encoded() == mapHead + [UInt8](repeating: 0xf6, count: 2 * count))
        }
        #expect(CBORValue.bool(true).encoded() == libcbor { cbor_encode_bool(true, $0, $1) })
        #expect(CBORValue.bool(false).encoded() == libcbor { cbor_encode_bool(false, $0, $1) })
        #expect(CBORValue.null.encoded() == libcbor { cbor_encode_null($0, $1) })
        #expect(CBORValue.undefined.encoded() == libcbor { cbor_encode_undef($0, $1) })
        let floats: [Double] = [0, -0.0, 1.5, -1e300, .infinity, -.infinity, .nan, Double(nan: 0x1234, signaling: true), .leastNonzeroMagnitude, .pi]
        for value in floats {
            #expect(CBORValue.float(value).encoded() == libcbor { cbor_encode_double(value, $0, $1) }, "\(value)")
        }
    }

    @Test("encode(into:) appends to what the buffer holds, the same bytes as encoded()")
    func encodeIntoAppends() {
        let value = CBORValue.textMap(["a": .bytes([1, 2, 3]), "bb": .array([.int(-5), .float(2.5), .text("ü")])])
        var buffer: [UInt8] = [9, 9]
        for _ in 0..<100 { value.encode(into: &buffer) }
        #expect(buffer.count == 2 + 100 * value.encodedLength)
        #expect(Array(buffer[2..<(2 + value.encodedLength)]) == value.encoded())
        #expect(Array(buffer.suffix(value.encodedLength)) == value.encoded())
    }

    /// The encoding of a map whose keys are `keys`, in order, each with value `null`.
    private func map(_ keys: [CBORValue]) -> [UInt8] {
        CBORValue.map(keys.map { CBORMapEntry($0, .null) }).encoded()
    }

    @Test("ASCII text keys: duplicates found at the repeated key, in small and large maps")
    func asciiDuplicates() {
        for size in [2, 5, 16, 17, 18, 40, 64, 65, 66, 300] {
            let keys = (0..<size).map { CBORValue.text("key_\($0)") }
            #expect(decodeError(map(keys)) == nil, "\(size)")
            for repeated in [0, size / 2, size - 1] {
                let bytes = map(keys + [keys[repeated]])
                let error = decodeError(bytes)
                #expect(error?.code == .duplicateKey, "\(size) \(repeated)")
                #expect(error?.offset == bytes.count - keys[repeated].encodedLength - 1, "\(size) \(repeated)")
            }
        }
        #expect(decodeError(map([.text(""), .text("a"), .text("")]))?.code == .duplicateKey)
        #expect(decodeError(map([.text(""), .text("a"), .text("b")])) == nil)
        // Same length, different bytes; prefixes of one another.
        #expect(decodeError(map([.text("ab"), .text("ba"), .text("a"), .text("abc")])) == nil)
        // Long keys alike in their first 8 bytes, or in all but their first.
        for size in [3, 70] {
            let long = (0..<size).map { CBORValue.text("prefix__\($0)_reply") } + [.text("Xrefix__1_reply")]
            #expect(decodeError(map(long)) == nil, "\(size)")
            #expect(decodeError(map(long + [.text("prefix__1_reply")]))?.code == .duplicateKey, "\(size)")
            #expect(decodeError(map(long + [.text("Xrefix__1_reply")]))?.code == .duplicateKey, "\(size)")
            #expect(decodeError(map(long + [.text("prefix__1_replY")])) == nil, "\(size)")
        }
    }

    @Test("keys that are not ASCII text are still compared as values against ASCII ones")
    func mixedKeys() throws {
        let kelvin = CBORValue.text("\u{212A}")  // KELVIN SIGN: canonically equivalent to "K"
        #expect(CBORValue.text("K") == kelvin)
        let filler = (0..<20).map { CBORValue.text("f\($0)") }
        for prefix in [[], filler] {
            #expect(decodeError(map(prefix + [.text("K"), kelvin]))?.code == .duplicateKey)
            #expect(decodeError(map(prefix + [kelvin, .text("K")]))?.code == .duplicateKey)
            #expect(decodeError(map(prefix + [.text("K"), .unsigned(1), .text("K")]))?.code == .duplicateKey)
            #expect(decodeError(map(prefix + [.unsigned(1), .text("K"), .text("K")]))?.code == .duplicateKey)
            #expect(decodeError(map(prefix + [.text("K"), .unsigned(1), .text("k")])) == nil)
            #expect(decodeError(map(prefix + [.text("é"), .text("e\u{301}")]))?.code == .duplicateKey)
            #expect(decodeError(map(prefix + [.text("a"), .array([.text("a")]), .text("b")])) == nil)
        }
        // Keys of nested maps are checked in their own map.
        let nested = CBORValue.textMap(["a": .textMap(["a": .null, "b": .null]), "b": .textMap(["a": .null])])
        #expect(decodeError(nested.encoded()) == nil)
        #expect(try CBORDecoder.decode(nested.encoded()) == nested)
        // A text value equal to a key is not a key.
        #expect(decodeError(CBORValue.textMap(["a": .text("a"), "b": .text("a")]).encoded()) == nil)
    }
}
