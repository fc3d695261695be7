extension CBORValue {
    /// Encodes the value as CBOR.
    ///
    /// The encoding is deterministic: definite lengths, integer and length heads in their
    /// shortest form, map pairs in the order they are stored, and every float as a 64-bit
    /// float (`0xfb`). The output array is allocated once, at its exact final size.
    public func encoded() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(encodedLength)
        append(to: &buffer)
        return buffer
    }

    /// Appends the value's CBOR encoding to `buffer`.
    ///
    /// Produces the same bytes as ``encoded()``. Room for the whole encoding is reserved once
    /// (growing `buffer` at least geometrically), then heads are written directly.
    public func encode(into buffer: inout [UInt8]) {
        let needed = encodedLength
        if buffer.capacity - buffer.count < needed {
            buffer.reserveCapacity(max(buffer.count + needed, buffer.capacity * 2))
        }
        append(to: &buffer)
    }

    /// Appends the encoding without reserving room first (``encode(into:)`` has).
    private func append(to buffer: inout [UInt8]) {
        switch self {
        case .unsigned(let value):
            CBORHead.append(major: 0, value, to: &buffer)
        case .negative(let value):
            CBORHead.append(major: 1, value, to: &buffer)
        case .bytes(let bytes):
            CBORHead.append(major: 2, UInt64(bytes.count), to: &buffer)
            buffer.append(contentsOf: bytes)
        case .text(var string):
            CBORHead.append(major: 3, UInt64(string.utf8.count), to: &buffer)
            string.withUTF8 { buffer.append(contentsOf: $0) }
        case .array(let elements):
            CBORHead.append(major: 4, UInt64(elements.count), to: &buffer)
            for element in elements {
                element.append(to: &buffer)
            }
        case .map(let entries):
            CBORHead.append(major: 5, UInt64(entries.count), to: &buffer)
            for entry in entries {
                entry.key.append(to: &buffer)
                entry.value.append(to: &buffer)
            }
        case .tagged(let tag, let item):
            CBORHead.append(major: 6, tag, to: &buffer)
            item.append(to: &buffer)
        case .bool(let value):
            buffer.append(value ? 0xf5 : 0xf4)
        case .null:
            buffer.append(0xf6)
        case .undefined:
            buffer.append(0xf7)
        case .float(let value):
            // Always the 64-bit form, the bit pattern as is (NaN payloads kept), as libcbor's
            // `cbor_encode_double` writes it.
            buffer.append(0xfb)
            appendBigEndian(value.bitPattern, bytes: 8, to: &buffer)
        }
    }

    /// The number of bytes ``encoded()`` produces, computed without encoding.
    public var encodedLength: Int {
        switch self {
        case .unsigned(let value), .negative(let value):
            return CBORHead.length(value)
        case .bytes(let bytes):
            return CBORHead.length(UInt64(bytes.count)) + bytes.count
        case .text(let string):
            let length = string.utf8.count
            return CBORHead.length(UInt64(length)) + length
        case .array(let elements):
            var total = CBORHead.length(UInt64(elements.count))
            for element in elements {
                total += element.encodedLength
            }
            return total
        case .map(let entries):
            var total = CBORHead.length(UInt64(entries.count))
            for entry in entries {
                total += entry.key.encodedLength + entry.value.encodedLength
            }
            return total
        case .tagged(let tag, let item):
            return CBORHead.length(tag) + item.encodedLength
        case .bool, .null, .undefined:
            return 1
        case .float:
            return 9
        }
    }
}

/// CBOR heads (the initial byte and its argument) in their shortest form: what ``CBORValue``'s
/// encoder writes, for code that writes or checks a fixed message layout without a
/// ``CBORValue`` tree.
public enum CBORHead {
    /// The length of a head whose argument is `argument`, in its shortest form.
    @inline(__always)
    public static func length(_ argument: UInt64) -> Int {
        switch argument {
        case 0..<24: return 1
        case 24...0xff: return 2
        case 0x100...0xffff: return 3
        case 0x1_0000...0xffff_ffff: return 5
        default: return 9
        }
    }

    /// Appends the head of major type `major` (0...7) with `argument` in its shortest form.
    @inline(__always)
    public static func append(major: UInt8, _ argument: UInt64, to buffer: inout [UInt8]) {
        let type = major << 5
        switch argument {
        case 0..<24:
            buffer.append(type | UInt8(truncatingIfNeeded: argument))
        case 24...0xff:
            buffer.append(type | 24)
            buffer.append(UInt8(truncatingIfNeeded: argument))
        case 0x100...0xffff:
            buffer.append(type | 25)
            appendBigEndian(argument, bytes: 2, to: &buffer)
        case 0x1_0000...0xffff_ffff:
            buffer.append(type | 26)
            appendBigEndian(argument, bytes: 4, to: &buffer)
        default:
            buffer.append(type | 27)
            appendBigEndian(argument, bytes: 8, to: &buffer)
        }
    }

    /// Reads the head at `index` of `bytes` if it is a definite head in its shortest form, and
    /// moves `index` past it; returns `nil` otherwise (too short, indefinite or reserved, or
    /// not shortest), leaving `index` unchanged.
    @inline(__always)
    public static func read(_ bytes: UnsafeRawBufferPointer, at index: inout Int) -> (major: UInt8, argument: UInt64)? {
        guard index < bytes.count else { return nil }
        let initial = bytes[index]
        let info = initial & 0x1f
        let size: Int
        switch info {
        case 0..<24:
            index += 1
            return (initial >> 5, UInt64(info))
        case 24: size = 1
        case 25: size = 2
        case 26: size = 4
        case 27: size = 8
        default: return nil
        }
        guard bytes.count - index > size else { return nil }
        var argument: UInt64 = 0
        for offset in 1...size { argument = argument << 8 | UInt64(bytes[index + offset]) }
        guard length(argument) == size + 1 else { return nil }
        index += size + 1
        return (initial >> 5, argument)
    }
}

/// Appends the low `bytes` bytes of `value`, most significant first.
@inline(__always)
private func appendBigEndian(_ value: UInt64, bytes: Int, to buffer: inout [UInt8]) {
    var shift = (bytes - 1) * 8
    while shift >= 0 {
        buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        shift -= 8
    }
}
