/// An error from decoding or validating thin-client wire data.
///
/// Codes are stable; messages are for humans and never contain key material.
public struct ThinWireError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case frameTooLarge, invalidCBOR, notAMap, noMessageKey, ambiguousMessage
            case missingField, wrongType, wrongLength, invalidGeometry
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// A frame's length prefix exceeds the 40 MiB cap (or the decoder's configured cap).
        public static let frameTooLarge = Code(.frameTooLarge)
        /// A frame body is not exactly one well-formed CBOR data item.
        public static let invalidCBOR = Code(.invalidCBOR)
        /// A message, or a field expected to be a map, is not a CBOR map.
        public static let notAMap = Code(.notAMap)
        /// A message map has no non-null text key.
        public static let noMessageKey = Code(.noMessageKey)
        /// A message map has more than one non-null top-level key.
        public static let ambiguousMessage = Code(.ambiguousMessage)
        /// A required field is absent or null.
        public static let missingField = Code(.missingField)
        /// A field has the wrong CBOR type.
        public static let wrongType = Code(.wrongType)
        /// A byte-string field does not have its exact required length.
        public static let wrongLength = Code(.wrongLength)
        /// A geometry map is incomplete, has unknown keys, or holds inconsistent values.
        public static let invalidGeometry = Code(.invalidGeometry)

        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// A human-readable explanation.
    public var message: String

    /// Creates a wire error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "thin wire error (\(code)): \(message)" }
}
