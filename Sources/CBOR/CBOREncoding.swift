import CCBOR

extension CBORValue {
    /// Encodes the value as CBOR.
    ///
    /// The encoding is deterministic: definite lengths, integer and length heads in their
    /// shortest form, map pairs in the order they are stored, and every float as a 64-bit
    /// float (`0xfb`). The output array is allocated once, at its exact final size.
    public func encoded() -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(encodedLength)
        encode(into: &buffer)
        return buffer
    }

    /// Appends the value's CBOR encoding to `buffer`.
    ///
    /// Produces the same bytes as ``encoded()``. Heads are written by libcbor's encoders into
    /// a small stack buffer; the only heap growth is that of `buffer` itself.
    public func encode(into buffer: inout [UInt8]) {
        switch self {
        case .unsigned(let value):
            appendHead(to: &buffer) { cbor_encode_uint(value, $0, $1) }
        case .negative(let value):
            appendHead(to: &buffer) { cbor_encode_negint(value, $0, $1) }
        case .bytes(let bytes):
            appendHead(to: &buffer) { cbor_encode_bytestring_start(bytes.count, $0, $1) }
            buffer.append(contentsOf: bytes)
        case .text(var string):
            let length = string.utf8.count
            appendHead(to: &buffer) { cbor_encode_string_start(length, $0, $1) }
            string.withUTF8 { buffer.append(contentsOf: $0) }
        case .array(let elements):
            appendHead(to: &buffer) { cbor_encode_array_start(elements.count, $0, $1) }
            for element in elements {
                element.encode(into: &buffer)
            }
        case .map(let entries):
            appendHead(to: &buffer) { cbor_encode_map_start(entries.count, $0, $1) }
            for entry in entries {
                entry.key.encode(into: &buffer)
                entry.value.encode(into: &buffer)
            }
        case .tagged(let tag, let item):
            appendHead(to: &buffer) { cbor_encode_tag(tag, $0, $1) }
            item.encode(into: &buffer)
        case .bool(let value):
            appendHead(to: &buffer) { cbor_encode_bool(value, $0, $1) }
        case .null:
            appendHead(to: &buffer) { cbor_encode_null($0, $1) }
        case .undefined:
            appendHead(to: &buffer) { cbor_encode_undef($0, $1) }
        case .float(let value):
            appendHead(to: &buffer) { cbor_encode_double(value, $0, $1) }
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

/// Runs one of libcbor's head encoders on a 9-byte stack buffer and appends its output.
@inline(__always)
private func appendHead(
    to buffer: inout [UInt8],
    _ write: (UnsafeMutablePointer<UInt8>, Int) -> Int
) {
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 9) { scratch in
        let base = scratch.baseAddress!
        let written = write(base, scratch.count)
        // libcbor returns 0 only when the buffer is too small; 9 bytes always suffice.
        precondition(written > 0 && written <= scratch.count, "libcbor head encoder failed")
        buffer.append(contentsOf: UnsafeBufferPointer(start: base, count: written))
    }
}
