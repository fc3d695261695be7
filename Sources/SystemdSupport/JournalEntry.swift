/// One journal entry in journald's native datagram format
/// (`KEY=VALUE\n`, or `KEY\n<u64 LE length><bytes>\n` for values with newlines).
public struct JournalEntry: Sendable, Equatable {
    /// The fields in order; a name may repeat.
    public private(set) var fields: [(name: String, value: [UInt8])]

    /// The longest field name journald accepts.
    public static let maxNameLength = 64
    /// The longest value kept; longer values are cut (entries stay within one datagram).
    public static let maxValueLength = 48 * 1024
    /// The most bytes of all values together; fields beyond it are dropped.
    public static let maxEntryLength = 160 * 1024

    private var total = 0

    /// An empty entry.
    public init() { fields = [] }

    /// Adds a field; `name` must be a valid journal field name (see ``fieldName(for:)``).
    public mutating func append(_ name: String, _ value: String) {
        append(name, Array(value.utf8))
    }

    /// Adds a field with raw bytes.
    public mutating func append(_ name: String, _ value: [UInt8]) {
        let cut = value.count > Self.maxValueLength ? Array(value.prefix(Self.maxValueLength)) : value
        guard total + cut.count <= Self.maxEntryLength else { return }
        total += cut.count + name.utf8.count
        fields.append((name, cut))
    }

    /// The first value of `name`, as text.
    public func value(_ name: String) -> String? {
        fields.first { $0.name == name }.map { String(decoding: $0.value, as: UTF8.self) }
    }

    /// The datagram for journald.
    public func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(total + fields.count * 12)
        for (name, value) in fields {
            bytes.append(contentsOf: name.utf8)
            if value.contains(UInt8(ascii: "\n")) {
                bytes.append(UInt8(ascii: "\n"))
                var length = UInt64(value.count).littleEndian
                withUnsafeBytes(of: &length) { bytes.append(contentsOf: $0) }
            } else {
                bytes.append(UInt8(ascii: "="))
            }
            bytes.append(contentsOf: value)
            bytes.append(UInt8(ascii: "\n"))
        }
        return bytes
    }

    /// Parses a native datagram (both encodings), for tests and tools; `nil` if malformed.
    public init?(decoding bytes: [UInt8]) {
        self.init()
        var index = 0
        while index < bytes.count {
            guard let end = bytes[index...].firstIndex(where: { $0 == UInt8(ascii: "=") || $0 == UInt8(ascii: "\n") }) else { return nil }
            let name = String(decoding: bytes[index..<end], as: UTF8.self)
            if bytes[end] == UInt8(ascii: "=") {
                guard let newline = bytes[(end + 1)...].firstIndex(of: UInt8(ascii: "\n")) else { return nil }
                fields.append((name, Array(bytes[(end + 1)..<newline])))
                index = newline + 1
            } else {
                guard end + 9 <= bytes.count else { return nil }
                var length: UInt64 = 0
                for offset in 0..<8 { length |= UInt64(bytes[end + 1 + offset]) << (8 * UInt64(offset)) }
                let start = end + 9
                guard length <= UInt64(bytes.count - start), start + Int(length) < bytes.count,
                    bytes[start + Int(length)] == UInt8(ascii: "\n")
                else { return nil }
                fields.append((name, Array(bytes[start..<(start + Int(length))])))
                index = start + Int(length) + 1
            }
        }
    }

    /// A journal field name for a metadata key: uppercase letters, digits and `_`, not starting
    /// with `_` or a digit, at most 64 characters (`"stream"` becomes `STREAM_NAME`).
    public static func fieldName(for key: String) -> String {
        if key == "stream" { return "STREAM_NAME" }
        var name = ""
        for scalar in key.unicodeScalars.prefix(maxNameLength) {
            switch scalar {
            case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
            case "A"..."Z", "0"..."9": name.unicodeScalars.append(scalar)
            default: name.append("_")
            }
        }
        if name.isEmpty || name.first == "_" || name.first!.isNumber { name = String(("X_" + name).prefix(maxNameLength)) }
        return name
    }

    public static func == (lhs: JournalEntry, rhs: JournalEntry) -> Bool {
        lhs.fields.count == rhs.fields.count && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}
