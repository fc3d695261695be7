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
            appendHead(major: 0, value, to: &buffer)
        case .negative(let value):
            appendHead(major: 1, value, to: &buffer)
        case .bytes(let bytes):
            appendHead(major: 2, UInt64(bytes.count), to: &buffer)
            buffer.append(contentsOf: bytes)
        case .text(var string):
            appendHead(major: 3, UInt64(string.utf8.count), to: &buffer)
            string.withUTF8 { buffer.append(contentsOf: $0) }
        case .array(let elements):
            appendHead(major: 4, UInt64(elements.count), to: &buffer)
            for element in elements {
                element.append(to: &buffer)
            }
        case .map(let entries):
            appendHead(major: 5, UInt64(entries.count), to: &buffer)
            for entry in entries {
                entry.key.append(to: &buffer)
                entry.value.append(to: &buffer)
            }
        case .tagged(let tag, let item):
            appendHead(major: 6, tag, to: &buffer)
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
            return headLength(value)
        case .bytes(let bytes):
            return headLength(UInt64(bytes.count)) + bytes.count
        case .text(let string):
            let length = string.utf8.count
            return headLength(UInt64(length)) + length
        case .array(let elements):
            var total = headLength(UInt64(elements.count))
            for element in elements {
                total += element.encodedLength
            }
            return total
        case .map(let entries):
            var total = headLength(UInt64(entries.count))
            for entry in entries {
                total += entry.key.encodedLength + entry.value.encodedLength
            }
            return total
        case .tagged(let tag, let item):
            return headLength(tag) + item.encodedLength
        case .bool, .null, .undefined:
            return 1
        case .float:
            return 9
        }
    }
}

/// The length of a CBOR head whose argument is `argument`, in its shortest form.
@inline(__always)
private func headLength(_ argument: UInt64) -> Int {
    switch argument {
    case 0..<24: return 1
    case 24...0xff: return 2
    case 0x100...0xffff: return 3
    case 0x1_0000...0xffff_ffff: return 5
    default: return 9
    }
}

/// Appends the head of major type `major` with `argument` in its shortest form.
@inline(__always)
private func appendHead(major: UInt8, _ argument: UInt64, to buffer: inout [UInt8]) {
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

/// Appends the low `bytes` bytes of `value`, most significant first.
@inline(__always)
private func appendBigEndian(_ value: UInt64, bytes: Int, to buffer: inout [UInt8]) {
    var shift = (bytes - 1) * 8
    while shift >= 0 {
        buffer.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
        shift -= 8
    }
}
