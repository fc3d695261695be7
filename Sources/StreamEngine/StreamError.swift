/// An error from a stream, with a stable code.
///
/// Messages never contain key material or addresses.
public struct StreamError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case closed, halted, invalidAddress, geometryChanged, frameDecrypt, protocolViolation
            case invalidCheckpoint, transport, readOnly, invalidConfiguration, invalidOffset
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The stream (or this direction of it) is closed.
        public static let closed = Code(.closed)
        /// The stream was halted and does no more work.
        public static let halted = Code(.halted)
        /// A stream address could not be parsed or has the wrong kind.
        public static let invalidAddress = Code(.invalidAddress)
        /// The transport's box size differs from the one the stream was created with.
        public static let geometryChanged = Code(.geometryChanged)
        /// A box kept failing authentication or decryption.
        public static let frameDecrypt = Code(.frameDecrypt)
        /// The peer sent something the protocol forbids.
        public static let protocolViolation = Code(.protocolViolation)
        /// A checkpoint could not be decoded or is inconsistent.
        public static let invalidCheckpoint = Code(.invalidCheckpoint)
        /// The transport failed permanently.
        public static let transport = Code(.transport)
        /// The stream can only read (a multicast reader) or only write.
        public static let readOnly = Code(.readOnly)
        /// A configuration value is out of range.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// A stream offset given to a read or consume is outside the range it may take.
        public static let invalidOffset = Code(.invalidOffset)

        /// The code's stable name, such as `frameDecrypt`.
        public var name: String { backing.rawValue }
        public var description: String { backing.rawValue }
    }

    /// The stable code.
    public var code: Code
    /// A human-readable explanation.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "stream error (\(code)): \(message)" }
}
