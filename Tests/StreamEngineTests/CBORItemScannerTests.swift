import CBOR
@testable import StreamEngine
import Testing

/// The resumable scanner that finds the end of a CBOR item for ``CBORMessageStream``.
@Suite struct CBORItemScannerTests {
    static let values: [CBORValue] = [
        .unsigned(0), .unsigned(23), .unsigned(24), .unsigned(1 << 40), .negative(500), .bool(true), .null, .float(1.5),
        .bytes([]), .bytes(Array(repeating: 9, count: 300)), .text("héllo"), .array([]), .map([]),
        .array([.unsigned(1), .array([.text("x"), .bytes([1, 2])]), .tagged(42, .map([]))]),
        .textMap(["n": .unsigned(7), "blob": .bytes(Array(repeating: 1, count: 70_000)), "nested": .array([.null, .float(2.25)])]),
        .tagged(1, .tagged(2, .unsigned(3))),
    ]

    /// Feeds `bytes` one byte at a time: incomplete until the last byte, then complete at its length.
    func scanByteByByte(_ bytes: [UInt8], trailing: [UInt8] = [0x01, 0x02]) -> Bool {
        var scanner = CBORItemScanner()
        let stream = bytes + trailing
        for end in 1...bytes.count {
            let outcome = scanner.scan(stream[..<end], limit: 1 << 20, maxDepth: 32)
            if end < bytes.count, outcome != .incomplete { return false }
            if end == bytes.count, outcome != .complete(length: bytes.count) { return false }
        }
        // Trailing bytes of the next item do not change the answer.
        var whole = CBORItemScanner()
        return whole.scan(stream[...], limit: 1 << 20, maxDepth: 32) == .complete(length: bytes.count)
    }

    @Test func findsTheEndOfEveryItemByteByByte() throws {
        for value in Self.values {
            let encoded = value.encoded()
            #expect(scanByteByByte(encoded), "\(encoded.prefix(8))")
            #expect(try CBORDecoder.decodePrefix(encoded + [0xff]).consumed == encoded.count)
        }
    }

    @Test func largeDeclarationsAreRefusedBeforeTheirBytesArrive() {
        var scanner = CBORItemScanner()
        // A byte string declaring 2^32 bytes.
        #expect(scanner.scan([0x5a, 0xff, 0xff, 0xff, 0xff][...], limit: 1 << 20, maxDepth: 32) == .tooLarge)
        var array = CBORItemScanner()
        // An array declaring 2^63 items.
        #expect(array.scan([0x9b, 0x80, 0, 0, 0, 0, 0, 0, 0][...], limit: 1 << 20, maxDepth: 32) == .tooLarge)
        var exact = CBORItemScanner()
        // A string of 100 bytes fits a limit of 102 (2-byte head), not of 101.
        #expect(exact.scan([0x58, 100][...], limit: 102, maxDepth: 32) == .incomplete)
        var over = CBORItemScanner()
        #expect(over.scan([0x58, 100][...], limit: 101, maxDepth: 32) == .tooLarge)
    }

    @Test func malformedHeadsAndDeepNesting() {
        // A break, reserved values, indefinite lengths (which the decoder does not support either).
        for bytes: [UInt8] in [[0xff], [0x1c], [0x1f], [0xdf], [0x81, 0xff], [0x9f, 0x01, 0xff], [0x5f, 0x41, 0x01, 0xff]] {
            var scanner = CBORItemScanner()
            #expect(scanner.scan(bytes[...], limit: 1 << 20, maxDepth: 32) == .malformed, "\(bytes)")
        }
        var deep = CBORItemScanner()
        #expect(deep.scan(Array(repeating: 0x81, count: 40)[...], limit: 1 << 20, maxDepth: 32) == .malformed)
    }
}
