import CBOR
import Testing

@Suite("CBOR decoding errors")
struct CBORErrorTests {
    @Test("empty input is truncated")
    func empty() {
        let error = decodeError([])
        #expect(error?.code == .truncated)
        #expect(error?.offset == 0)
    }

    @Test("a head cut short is truncated")
    func truncatedHeads() {
        for input in ["18", "19 01", "1a 00 00 00", "1b 00 00 00 00 00 00 00", "38", "58", "79 00", "98", "b9 00", "d8", "f9 00", "fa 00 00", "fb 00"] {
            let error = decodeError(hex(input))
            #expect(error?.code == .truncated, "\(input)")
            #expect(error?.offset == 0, "\(input)")
        }
    }

    @Test("a container missing its last elements is truncated at the end of input")
    func truncatedContainer() {
        // [1, [2 ...   the inner array is announced with 1 element, input ends.
        let error = decodeError(hex("82 01 81"))
        #expect(error?.isTruncation == true)
        let tagOnly = decodeError(hex("c1"))
        #expect(tagOnly?.code == .truncated)
        #expect(tagOnly?.offset == 1)
    }

    @Test("every strict prefix of a valid encoding fails as truncated")
    func everyPrefix() throws {
        let value = CBORValue.textMap([
            "Type": .unsigned(1), "Id": .unsigned(300), "Ack": .unsigned(.max),
            "Payload": .bytes(Array(repeating: 0xab, count: 300)),
            "Nested": .array([.int(-70_000), .float(2.5), .tagged(1, .text("x")), .null, .bool(true), .map([])]),
        ])
        let bytes = value.encoded()
        #expect(try CBORDecoder.decode(bytes) == value)
        for length in 0..<bytes.count {
            let error = decodeError(Array(bytes[..<length]))
            #expect(error?.isTruncation == true, "prefix of \(length) bytes: \(String(describing: error))")
            if let error {
                #expect(error.offset <= length)
            }
        }
    }

    @Test("bytes after the item are trailingBytes; decodePrefix accepts them")
    func trailing() throws {
        let error = decodeError(hex("01 00"))
        #expect(error?.code == .trailingBytes)
        #expect(error?.offset == 1)
        let prefix = try CBORDecoder.decodePrefix(hex("01 00"))
        #expect(prefix.value == .unsigned(1))
        #expect(prefix.consumed == 1)
    }

    @Test("decodePrefix reads a zero-padded frame and reports its length")
    func zeroPadded() throws {
        let frame = hex("a4645479706500624964006341636b1bffffffffffffffff675061796c6f61644568656c6c6f")
        let padded = frame + Array(repeating: 0, count: 1813 - frame.count)
        let (value, consumed) = try CBORDecoder.decodePrefix(padded)
        #expect(consumed == 38)
        #expect(value["Payload"] == .bytes(Array("hello".utf8)))
        #expect(decodeError(padded)?.code == .trailingBytes)
        #expect(decodeError(padded)?.offset == 38)
        // The slice and raw-buffer overloads agree, with offsets relative to their start.
        let slice = (Array(repeating: 0xff, count: 5) + padded)[5...]
        let fromSlice = try CBORDecoder.decodePrefix(slice)
        #expect(fromSlice.value == value && fromSlice.consumed == 38)
        let fromRaw = try padded.withUnsafeBytes { try CBORDecoder.decodePrefix($0) }
        #expect(fromRaw.value == value && fromRaw.consumed == 38)
        #expect(try CBORDecoder.decode(frame[...]) == value)
    }

    @Test("huge declared counts fail at once with lengthExceedsInput")
    func hugeDeclaredCounts() {
        let hostile = [
            "9b ffffffffffffffff",  // array of 2^64-1 elements
            "5b ffffffffffffffff",  // byte string of 2^64-1 bytes
            "7b ffffffffffffffff",  // text string of 2^64-1 bytes
            "bb ffffffffffffffff",  // map of 2^64-1 pairs
            "bb 8000000000000000",  // map whose pair count doubles past 2^64
            "9a ffffffff 00 00",  // array of 4 Gi elements
            "5a ffffffff 00",  // byte string of 4 GiB
            "9b 7fffffffffffffff 00",  // array of Int.max elements
            "5b 7ffffffffffffff7 00",  // byte string near Int.max
        ]
        for input in hostile {
            let error = decodeError(hex(input))
            #expect(error?.code == .lengthExceedsInput, "\(input)")
            #expect(error?.offset == 0, "\(input)")
        }
        // Announced counts that nearly fit, and the elements owed to enclosing containers.
        #expect(decodeError(hex("83 01 02"))?.code == .lengthExceedsInput)
        #expect(decodeError(hex("a2 01 02 03"))?.code == .lengthExceedsInput)
        #expect(decodeError(hex("5a 00000010 01"))?.code == .lengthExceedsInput)
        let owed = decodeError(hex("82 82 00 00"))
        #expect(owed?.code == .lengthExceedsInput)
        #expect(owed?.offset == 1)
        // Nested hostile header inside a valid prefix.
        let nested = decodeError(hex("82 01 9b ffffffffffffffff"))
        #expect(nested?.code == .lengthExceedsInput)
        #expect(nested?.offset == 2)
    }

    @Test("10 000 nested arrays fail with nestingTooDeep")
    func deepNesting() {
        let bytes = [UInt8](repeating: 0x81, count: 10_000)
        let error = decodeError(bytes)
        #expect(error?.code == .nestingTooDeep)
        #expect(error?.offset == 32)

        // Exactly maxDepth levels decode; one more does not.
        let ok = [UInt8](repeating: 0x81, count: 32) + [0x00]
        #expect(decodeError(ok) == nil)
        let tooDeep = [UInt8](repeating: 0x81, count: 33) + [0x00]
        #expect(decodeError(tooDeep)?.code == .nestingTooDeep)
        // Maps and tags count too.
        let tags = [UInt8](repeating: 0xc1, count: 40) + [0x00]
        #expect(decodeError(tags)?.code == .nestingTooDeep)
        // {0: {0: {0: ... 0}}}: each level is the head a1 then the key 0.
        var maps: [UInt8] = []
        for _ in 0..<40 { maps += [0xa1, 0x00] }
        maps.append(0x00)
        #expect(decodeError(maps)?.code == .nestingTooDeep)
    }

    @Test("a small maxDepth")
    func smallDepth() {
        let limits = CBORDecoder.Limits(maxDepth: 1)
        #expect(decodeError(hex("82 01 02"), limits: limits) == nil)
        #expect(decodeError(hex("81 81 01"), limits: limits)?.code == .nestingTooDeep)
        #expect(decodeError(hex("81 80"), limits: limits)?.code == .nestingTooDeep)
        let scalarsOnly = CBORDecoder.Limits(maxDepth: 0)
        #expect(decodeError(hex("01"), limits: scalarsOnly) == nil)
        #expect(decodeError(hex("80"), limits: scalarsOnly)?.code == .nestingTooDeep)
    }

    @Test("a 100 001-element array fails with tooManyItems; 99 999 elements decode")
    func tooManyItems() throws {
        let count = 100_001
        let big = hex("9a 000186a1") + [UInt8](repeating: 0, count: count)
        let error = decodeError(big)
        #expect(error?.code == .tooManyItems)
        #expect(error?.offset == 0)

        let fits = hex("9a 0001869f") + [UInt8](repeating: 0, count: 99_999)
        let value = try CBORDecoder.decode(fits)
        #expect(value.array?.count == 99_999)
    }

    @Test("a small maxItems counts every item, nested ones included")
    func smallItemLimit() {
        let limits = CBORDecoder.Limits(maxItems: 10)
        #expect(decodeError(hex("89 000000000000000000"), limits: limits) == nil)  // 10 items
        #expect(decodeError(hex("8a 00000000000000000000"), limits: limits)?.code == .tooManyItems)  // 11
        // [[0,0,0],[0,0,0],[0,0]]: 1 + 4 + 4 + 3 = 12 items, each array fits on its own.
        let nested = hex("83 83 000000 83 000000 82 0000")
        let error = decodeError(nested, limits: limits)
        #expect(error?.code == .tooManyItems)
        #expect(decodeError(nested, limits: .init(maxItems: 12)) == nil)
        // Map keys and values count separately.
        #expect(decodeError(hex("a2 01 02 03 04"), limits: .init(maxItems: 5)) == nil)
        #expect(decodeError(hex("a2 01 02 03 04"), limits: .init(maxItems: 4))?.code == .tooManyItems)
    }

    @Test("indefinite lengths and unassigned simple values are unsupported")
    func unsupported() {
        for input in ["5f ff", "7f ff", "9f ff", "bf ff", "5f 41 00 ff", "81 9f ff", "f0", "f3", "f8 20", "f8 ff"] {
            #expect(decodeError(hex(input))?.code == .unsupported, "\(input)")
        }
        let nested = decodeError(hex("82 00 9f ff"))
        #expect(nested?.offset == 2)
    }

    @Test("invalid UTF-8 text is rejected")
    func invalidUTF8() {
        for input in ["61 ff", "62 c3 28", "62 c0 80", "63 ed a0 80", "64 f4 90 80 80", "61 80", "62 e6 b0"] {
            let error = decodeError(hex(input))
            #expect(error?.code == .invalidUTF8, "\(input)")
        }
        let nested = decodeError(hex("82 60 61 ff"))
        #expect(nested?.code == .invalidUTF8)
        #expect(nested?.offset == 2)
        // The same bytes are fine as a byte string.
        #expect(decodeError(hex("41 ff")) == nil)
    }

    @Test("text decodes the same on the ASCII path and the validating path")
    func asciiAndNonASCIIText() throws {
        #expect(try CBORDecoder.decode(hex("63 61 62 63")) == .text("abc"))
        #expect(try CBORDecoder.decode(hex("60")) == .text(""))
        #expect(try CBORDecoder.decode(hex("61 7f")) == .text("\u{7f}"))
        #expect(try CBORDecoder.decode(hex("64 61 c3 a9 62")) == .text("a\u{e9}b"))
        // An ASCII prefix does not let an invalid tail through.
        #expect(decodeError(hex("64 61 62 63 ff"))?.code == .invalidUTF8)
        #expect(decodeError(hex("64 61 62 63 80"))?.code == .invalidUTF8)
        // Text keys of a map, ASCII and not.
        #expect(try CBORDecoder.decode(hex("a2 61 61 01 62 c3 a9 02")) == .map([CBORMapEntry(.text("a"), .unsigned(1)), CBORMapEntry(.text("\u{e9}"), .unsigned(2))]))
    }

    @Test("duplicate map keys are rejected, in small and large maps")
    func duplicateKeys() {
        let small = decodeError(hex("a2 01 02 01 03"))
        #expect(small?.code == .duplicateKey)
        #expect(small?.offset == 3)
        #expect(decodeError(hex("a2 6161 01 6161 02"))?.code == .duplicateKey)
        // Structured keys compare by value.
        #expect(decodeError(hex("a2 820102 00 820102 00"))?.code == .duplicateKey)
        // Equal floats in different widths are the same key.
        #expect(decodeError(hex("a2 f93c00 00 fb3ff0000000000000 00"))?.code == .duplicateKey)
        // Different keys of the same value in different types are fine.
        #expect(decodeError(hex("a2 01 00 f93c00 00")) == nil)

        // A map of 40 pairs exercises the hashed path; repeat key 3 as the 41st.
        var big = CBORValue.map((0..<40).map { CBORMapEntry(.unsigned(UInt64($0)), .null) }).encoded()
        #expect(decodeError(big) == nil)
        #expect(big[0] == 0xb8 && big[1] == 40)
        big[1] = 41
        big += [0x03, 0xf6]
        let error = decodeError(big)
        #expect(error?.code == .duplicateKey)
        #expect(error?.offset == big.count - 2)
        // A duplicate seen by the linear scan before the map is large.
        var early = CBORValue.map((0..<40).map { CBORMapEntry(.unsigned(UInt64($0)), .null) }).encoded()
        early[early.count - 2] = 0x05  // key 39 becomes a second 5
        #expect(decodeError(early)?.code == .duplicateKey)
    }

    @Test("reserved heads and stray breaks are malformed")
    func malformed() {
        for input in ["1c", "1d", "1e", "1f", "3c", "3f", "5c", "7d", "9e", "bc", "dc", "df", "fc", "fd", "fe", "ff", "f8 00", "f8 1f"] {
            let error = decodeError(hex(input))
            #expect(error?.code == .malformed, "\(input)")
            #expect(error?.offset == 0, "\(input)")
        }
        let nested = decodeError(hex("82 00 ff"))
        #expect(nested?.code == .malformed)
        #expect(nested?.offset == 2)
    }

    @Test("error descriptions carry the code but not string contents")
    func descriptions() {
        let error = decodeError(hex("63 ed a0 80"))
        let text = error.map(String.init(describing:)) ?? ""
        #expect(text.contains("invalidUTF8"))
        #expect(CBORError.Code.lengthExceedsInput.description == "lengthExceedsInput")
    }
}
