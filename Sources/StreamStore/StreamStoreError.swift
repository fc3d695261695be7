/// An error from the durable store, with a stable code.
///
/// Messages carry SQLite's error text and the database path, never blob contents or names' secrets.
public struct StreamStoreError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case cannotOpen, permissions, corrupt, ioFailure, full, readOnly, schemaTooNew, misuse
            case duplicateName, unknownStream, constraint, busy, closed, poisoned, internalError
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The database or its directory could not be created or opened.
        public static let cannotOpen = Code(.cannotOpen)
        /// The directory or file has unsafe ownership or permissions.
        public static let permissions = Code(.permissions)
        /// The database file, or a stored value, is damaged or out of bounds.
        public static let corrupt = Code(.corrupt)
        /// A read, write or fsync failed.
        public static let ioFailure = Code(.ioFailure)
        /// The disk (or SQLite's size limit) is full.
        public static let full = Code(.full)
        /// The database cannot be written.
        public static let readOnly = Code(.readOnly)
        /// The file was written by a newer streamd whose schema this one does not know.
        public static let schemaTooNew = Code(.schemaTooNew)
        /// The caller passed something the store cannot hold (for example a sequence above `Int64.max`).
        public static let misuse = Code(.misuse)
        /// A stream with this name already exists.
        public static let duplicateName = Code(.duplicateName)
        /// A batch refers to a stream that is not stored.
        public static let unknownStream = Code(.unknownStream)
        /// A batch broke another constraint (such as a journal sequence stored twice).
        public static let constraint = Code(.constraint)
        /// Another process holds the database lock.
        public static let busy = Code(.busy)
        /// The database was closed.
        public static let closed = Code(.closed)
        /// An earlier commit failed with an I/O-class error; the database must be reopened.
        public static let poisoned = Code(.poisoned)
        /// SQLite reported an unexpected error.
        public static let internalError = Code(.internalError)

        /// The code's stable name, such as `schemaTooNew`.
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

    public var description: String { "store error (\(code)): \(message)" }
}
