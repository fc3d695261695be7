import CBOR

/// The single place where ThinWire (and, through `package` access, the simulator) turns
/// ``CBORValue`` into bytes and back.
///
/// - Important: Until the `CBOR` module's codec lands (branch `cbor`), this file carries a
///   small temporary codec of its own. When the codec lands, the bodies below become calls to
///   `value.encoded()` and `CBORDecoder.decode(_:)`; nothing else in ThinWire changes.
package enum WireCBOR {
    /// Encodes one CBOR data item.
    package static func encode(_ value: CBORValue) -> [UInt8] {
        var out: [UInt8] = []
        TemporaryCBOREncoder.encode(value, into: &out)
        return out
    }

    /// Appends the encoding of one CBOR data item to `buffer`.
    package static func encode(_ value: CBORValue, into buffer: inout [UInt8]) {
        TemporaryCBOREncoder.encode(value, into: &buffer)
    }

    /// Decodes exactly one CBOR data item spanning all of `bytes`.
    ///
    /// - Throws: ``ThinWireError`` with code ``ThinWireError/Code-swift.struct/invalidCBOR``.
    package static func decode(_ bytes: [UInt8]) throws(ThinWireError) -> CBORValue {
        var reader = TemporaryCBORDecoder(bytes: bytes)
        do {
            let value = try reader.item(depth: 0)
            guard reader.offset == bytes.count else {
                throw TemporaryCBORDecoder.Failure(reason: "trailing bytes after the data item")
            }
            return value
        } catch {
            throw ThinWireError(.invalidCBOR, "undecodable CBOR: \(error)")
        }
    }
}

// MARK: - Temporary codec (replaced by the CBOR module's codec when branch `cbor` lands)

private enum TemporaryCBOREncoder {
    static func head(_ major: UInt8, _ argument: UInt64, into out: inout [UInt8]) {
        let m = major << 5
        switch argument {
        case 0..<24: out.append(m | UInt8(argument))
        case 24...0xFF: out.append(m | 24); out.append(UInt8(argument))
        case 0x100...0xFFFF:
            out.append(m | 25)
            out.append(UInt8(argument >> 8)); out.append(UInt8(truncatingIfNeeded: argument))
        case 0x1_0000...0xFFFF_FFFF:
            out.append(m | 26)
            for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: argument >> UInt64(shift))) }
        default:
            out.append(m | 27)
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: argument >> UInt64(shift))) }
        }
    }

    static func encode(_ value: CBORValue, into out: inout [UInt8]) {
        switch value {
        case .unsigned(let v): head(0, v, into: &out)
        case .negative(let n): head(1, n, into: &out)
        case .bytes(let b): head(2, UInt64(b.count), into: &out); out.append(contentsOf: b)
        case .text(let s):
            let utf8 = Array(s.utf8)
            head(3, UInt64(utf8.count), into: &out); out.append(contentsOf: utf8)
        case .array(let items):
            head(4, UInt64(items.count), into: &out)
            for item in items { encode(item, into: &out) }
        case .map(let entries):
            head(5, UInt64(entries.count), into: &out)
            for entry in entries { encode(entry.key, into: &out); encode(entry.value, into: &out) }
        case .tagged(let tag, let inner): head(6, tag, into: &out); encode(inner, into: &out)
        case .bool(let b): out.append(b ? 0xF5 : 0xF4)
        case .null: out.append(0xF6)
        case .undefined: out.append(0xF7)
        case .float(let d):
            out.append(0xFB)
            let bits = d.bitPattern
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        }
    }
}

private struct TemporaryCBORDecoder {
    struct Failure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    let bytes: [UInt8]
    var offset = 0
    static let maximumDepth = 64

    init(bytes: [UInt8]) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    mutating func byte() throws(Failure) -> UInt8 {
        guard offset < bytes.count else { throw Failure(reason: "unexpected end of input") }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func take(_ count: UInt64) throws(Failure) -> ArraySlice<UInt8> {
        guard count <= UInt64(remaining) else { throw Failure(reason: "length \(count) exceeds the remaining input") }
        let n = Int(count)
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func argument(_ info: UInt8) throws(Failure) -> UInt64 {
        switch info {
        case 0..<24: return UInt64(info)
        case 24...27:
            let width = 1 << Int(info - 24)
            var v: UInt64 = 0
            for b in try take(UInt64(width)) { v = v << 8 | UInt64(b) }
            return v
        default: throw Failure(reason: "unsupported additional information \(info) (indefinite lengths are not used)")
        }
    }

    mutating func item(depth: Int) throws(Failure) -> CBORValue {
        guard depth < Self.maximumDepth else { throw Failure(reason: "nesting deeper than \(Self.maximumDepth)") }
        let initial = try byte()
        let major = initial >> 5
        let info = initial & 0x1F
        if major == 7 {
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 23: return .undefined
            case 25:
                let raw = try take(2)
                let half = UInt16(raw[raw.startIndex]) << 8 | UInt16(raw[raw.startIndex + 1])
                return .float(Double(Float16Bits.toFloat(half)))
            case 26:
                var v: UInt32 = 0
                for b in try take(4) { v = v << 8 | UInt32(b) }
                return .float(Double(Float(bitPattern: v)))
            case 27:
                var v: UInt64 = 0
                for b in try take(8) { v = v << 8 | UInt64(b) }
                return .float(Double(bitPattern: v))
            default: throw Failure(reason: "unsupported simple value \(info)")
            }
        }
        let arg = try argument(info)
        switch major {
        case 0: return .unsigned(arg)
        case 1: return .negative(arg)
        case 2: return .bytes(Array(try take(arg)))
        case 3:
            let raw = try take(arg)
            guard let s = String(validating: raw, as: UTF8.self) else { throw Failure(reason: "invalid UTF-8 in a text string") }
            return .text(s)
        case 4:
            guard arg <= UInt64(remaining) else { throw Failure(reason: "array count \(arg) exceeds the remaining input") }
            var items: [CBORValue] = []
            items.reserveCapacity(Int(arg))
            for _ in 0..<arg { items.append(try item(depth: depth + 1)) }
            return .array(items)
        case 5:
            guard arg <= UInt64(remaining / 2) else { throw Failure(reason: "map count \(arg) exceeds the remaining input") }
            var entries: [CBORMapEntry] = []
            entries.reserveCapacity(Int(arg))
            for _ in 0..<arg {
                let k = try item(depth: depth + 1)
                let v = try item(depth: depth + 1)
                entries.append(CBORMapEntry(k, v))
            }
            return .map(entries)
        default:
            return .tagged(arg, try item(depth: depth + 1))
        }
    }
}

private enum Float16Bits {
    static func toFloat(_ h: UInt16) -> Float {
        let sign: Float = (h & 0x8000) != 0 ? -1 : 1
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = Float(h & 0x3FF)
        switch exponent {
        case 0: return sign * mantissa * 0x1p-24
        case 31: return mantissa == 0 ? sign * .infinity : .nan
        default: return sign * (1 + mantissa / 1024) * Float(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }
}
