/// A validated stream name: 1 to 64 characters of `[A-Za-z0-9._-]`, starting with a letter or digit.
///
/// Names are local labels chosen by apps, not secrets; they may appear in logs.
public struct StreamName: Hashable, Sendable, CustomStringConvertible, Comparable {
    /// The name's text.
    public let rawValue: String

    /// Validates `text` as a stream name.
    ///
    /// - Throws: ``IPCError/Code-swift.struct/invalidName``, saying which rule `text` breaks
    ///   (the message never repeats the text).
    public init(_ text: String) throws(IPCError) {
        let bytes = text.utf8
        guard let first = bytes.first else {
            throw IPCError(.invalidName, "a stream name must not be empty")
        }
        guard bytes.count <= IPCLimits.maxNameLength else {
            throw IPCError(.invalidName, "a stream name must be at most \(IPCLimits.maxNameLength) characters, not \(bytes.count)")
        }
        for (position, byte) in bytes.enumerated() where !Self.isAllowed(byte) {
            throw IPCError(.invalidName, "character \(position + 1) of the stream name is outside [A-Za-z0-9._-]")
        }
        guard Self.isAlphanumeric(first) else {
            throw IPCError(.invalidName, "a stream name must start with a letter or digit")
        }
        rawValue = text
    }

    /// The name itself.
    public var description: String { rawValue }

    /// Orders names by their bytes.
    public static func < (lhs: StreamName, rhs: StreamName) -> Bool { lhs.rawValue < rhs.rawValue }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    private static func isAllowed(_ byte: UInt8) -> Bool {
        isAlphanumeric(byte) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }
}
