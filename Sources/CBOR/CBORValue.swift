/// A decoded CBOR data item.
///
/// `CBORValue` covers the subset of RFC 8949 that streamd and kpclientd use: integers,
/// byte and text strings, arrays, maps with keys in wire order, tags, booleans, null,
/// undefined and floating point numbers. Maps keep their pairs in the order they were
/// encoded, so that a value round-trips byte for byte.
public enum CBORValue: Sendable, Hashable {
    /// An unsigned integer (major type 0).
    case unsigned(UInt64)
    /// A negative integer (major type 1) holding `n` for the value `-1 - n`.
    case negative(UInt64)
    /// A definite-length byte string (major type 2).
    case bytes([UInt8])
    /// A definite-length UTF-8 text string (major type 3).
    case text(String)
    /// An array (major type 4).
    case array([CBORValue])
    /// A map (major type 5), with its pairs in wire order.
    case map([CBORMapEntry])
    /// A tagged item (major type 6).
    indirect case tagged(UInt64, CBORValue)
    /// `true` or `false`.
    case bool(Bool)
    /// The simple value `null`.
    case null
    /// The simple value `undefined`.
    case undefined
    /// A half, single or double precision float, widened to `Double`.
    case float(Double)
}

/// One key/value pair of a CBOR map.
public struct CBORMapEntry: Sendable, Hashable {
    /// The key.
    public var key: CBORValue
    /// The value.
    public var value: CBORValue

    /// Creates a map entry.
    public init(_ key: CBORValue, _ value: CBORValue) {
        self.key = key
        self.value = value
    }
}

extension CBORValue {
    /// Builds a map whose keys are text strings, in the given order.
    public static func textMap(_ pairs: KeyValuePairs<String, CBORValue>) -> CBORValue {
        .map(pairs.map { CBORMapEntry(.text($0.key), $0.value) })
    }

    /// Builds a map whose keys are text strings, from an array of pairs in the given order.
    public static func textMap(_ pairs: [(String, CBORValue)]) -> CBORValue {
        .map(pairs.map { CBORMapEntry(.text($0.0), $0.1) })
    }

    /// Makes an integer value from a signed integer.
    public static func int(_ value: Int64) -> CBORValue {
        value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-1 - value))
    }

    /// The value as an unsigned integer, if it is one.
    public var uint64: UInt64? {
        if case .unsigned(let v) = self { return v }
        return nil
    }

    /// The value as a signed integer, if it is an integer that fits in `Int64`.
    public var int64: Int64? {
        switch self {
        case .unsigned(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        case .negative(let n): return n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: return nil
        }
    }

    /// The value as bytes, if it is a byte string.
    public var bytes: [UInt8]? {
        if case .bytes(let v) = self { return v }
        return nil
    }

    /// The value as a string, if it is a text string.
    public var text: String? {
        if case .text(let v) = self { return v }
        return nil
    }

    /// The value as a Boolean, if it is one.
    public var bool: Bool? {
        if case .bool(let v) = self { return v }
        return nil
    }

    /// The value as an array, if it is one.
    public var array: [CBORValue]? {
        if case .array(let v) = self { return v }
        return nil
    }

    /// The map's entries, if the value is a map.
    public var mapEntries: [CBORMapEntry]? {
        if case .map(let v) = self { return v }
        return nil
    }

    /// The value as a floating point number, if it is a float or an integer.
    public var double: Double? {
        switch self {
        case .float(let d): return d
        case .unsigned(let v): return Double(v)
        case .negative(let n): return -1 - Double(n)
        default: return nil
        }
    }

    /// Whether the value is `null` (or `undefined`).
    public var isNull: Bool {
        switch self {
        case .null, .undefined: return true
        default: return false
        }
    }

    /// Looks up the value for a text key in a map; `nil` if this is not a map or the key is absent.
    public subscript(key: String) -> CBORValue? {
        guard case .map(let entries) = self else { return nil }
        for entry in entries where entry.key == .text(key) {
            return entry.value
        }
        return nil
    }
}
