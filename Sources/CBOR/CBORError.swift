/// An error from decoding CBOR bytes.
///
/// Errors carry a stable ``Code-swift.struct``, the byte ``offset`` at which the problem was
/// detected and a human-readable ``message``. Messages describe the structure of the input
/// (lengths, counts, header bytes), never the content of strings.
public struct CBORError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case truncated, trailingBytes, nestingTooDeep, lengthExceedsInput, tooManyItems
            case unsupported, invalidUTF8, duplicateKey, malformed
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The input ended in the middle of a data item.
        public static let truncated = Code(.truncated)
        /// Bytes follow the single data item that `CBORDecoder.decode` expects.
        public static let trailingBytes = Code(.trailingBytes)
        /// Arrays, maps and tags are nested deeper than ``CBORDecoder/Limits/maxDepth``.
        public static let nestingTooDeep = Code(.nestingTooDeep)
        /// A declared string length or element count cannot fit in the bytes that remain.
        ///
        /// This is how a truncated input usually shows, and how a hostile header that announces
        /// gigabytes shows; the decoder detects it before allocating anything.
        public static let lengthExceedsInput = Code(.lengthExceedsInput)
        /// The value holds more data items than ``CBORDecoder/Limits/maxItems``.
        public static let tooManyItems = Code(.tooManyItems)
        /// Well-formed CBOR outside the supported subset: indefinite lengths, simple values
        /// other than `false`, `true`, `null` and `undefined`.
        public static let unsupported = Code(.unsupported)
        /// A text string is not valid UTF-8.
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// A map holds the same key twice.
        public static let duplicateKey = Code(.duplicateKey)
        /// The bytes are not well-formed CBOR (reserved header values, a stray "break").
        public static let malformed = Code(.malformed)

        /// The code's stable name, such as `truncated`.
        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// The byte offset, from the start of the input, at which the problem was detected.
    ///
    /// This is the offset of the offending data item's first byte; for ``Code-swift.struct/trailingBytes``
    /// it is the offset of the first trailing byte.
    public var offset: Int
    /// A human-readable explanation; never contains decoded string content.
    public var message: String

    /// Creates a decoding error.
    public init(_ code: Code, offset: Int, _ message: String) {
        self.code = code
        self.offset = offset
        self.message = message
    }

    /// Whether the error means "the input is too short": ``Code-swift.struct/truncated`` or
    /// ``Code-swift.struct/lengthExceedsInput``.
    public var isTruncation: Bool {
        code == .truncated || code == .lengthExceedsInput
    }

    /// The error's code, offset and message on one line.
    public var description: String { "CBOR error (\(code)) at offset \(offset): \(message)" }
}
