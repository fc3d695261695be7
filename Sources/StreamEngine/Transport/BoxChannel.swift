/// How a read waits for a box that has not been written yet.
public enum BoxReadMode: Sendable, Hashable {
    /// Keep waiting until the box is written, the transport gives up, or the read is cancelled.
    ///
    /// Used for the read-ahead window of an active stream.
    case wait
    /// Look once and answer "not yet written" at once if the box is empty.
    ///
    /// Used for polling idle streams.
    case poll
}

/// One sequence of fixed-size, write-once boxes: a single direction of a stream.
///
/// Box *i* of the sequence is addressed by its index *i*, counted from 0. A channel opened
/// with a writer seed can read and write; one opened with a read locator can only read.
///
/// - Important: ``write(index:bytes:)`` must be idempotent for identical bytes: writing the
///   same bytes to the same index again succeeds. Writing different bytes to a box that
///   already holds something fails with ``BoxTransportError/Code-swift.struct/alreadyExists``.
public protocol BoxChannel: Sendable {
    /// The exact number of bytes every box holds.
    var payloadSize: Int { get }

    /// Writes `bytes` (exactly ``payloadSize`` long) into box `index`.
    ///
    /// Returning normally means the transport accepted the write. It does not prove the box
    /// is stored: lossy transports may still drop it, which the stream protocol recovers from.
    func write(index: UInt64, bytes: [UInt8]) async throws

    /// Reads box `index`.
    ///
    /// - Returns: the box's bytes, or `nil` if the box has not been written yet.
    func read(index: UInt64, mode: BoxReadMode) async throws -> [UInt8]?
}

/// The credential that opens a ``BoxChannel``.
public enum BoxChannelCredential: Sendable, Hashable {
    /// A 32-byte writer seed: the channel can write and read.
    case writerSeed([UInt8])
    /// An opaque read locator obtained from ``BoxStore/readLocator(forWriterSeed:)``: read only.
    case readLocator([UInt8])
}

/// A storage service holding many box channels, such as Pigeonhole or an in-memory store.
public protocol BoxStore: Sendable {
    /// The exact number of bytes every box of this store holds.
    func payloadSize() async throws -> Int

    /// Opens the channel that `credential` designates.
    func channel(_ credential: BoxChannelCredential) async throws -> any BoxChannel

    /// Computes the read-only locator of the channel written with `seed`.
    ///
    /// A holder of the locator can read that channel but cannot write to it.
    func readLocator(forWriterSeed seed: [UInt8]) async throws -> [UInt8]
}

/// An error from a ``BoxChannel`` or ``BoxStore``.
public struct BoxTransportError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case timeout, cancelled, unavailable, alreadyExists, permissionDenied, invalidPayloadSize, deleted, failed
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// The operation did not finish in time; it may be retried.
        public static let timeout = Code(.timeout)
        /// The operation was cancelled.
        public static let cancelled = Code(.cancelled)
        /// The storage service cannot be reached right now; it may be retried.
        public static let unavailable = Code(.unavailable)
        /// The box already holds different bytes (boxes are write-once).
        public static let alreadyExists = Code(.alreadyExists)
        /// The credential does not allow this operation (for example a write through a read locator).
        public static let permissionDenied = Code(.permissionDenied)
        /// The bytes are not exactly ``BoxChannel/payloadSize`` long.
        public static let invalidPayloadSize = Code(.invalidPayloadSize)
        /// The box was deleted (a Pigeonhole tombstone): its data is gone for good.
        public static let deleted = Code(.deleted)
        /// Any other failure; it may be retried.
        public static let failed = Code(.failed)

        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// A human-readable explanation; never contains secrets.
    public var message: String

    /// Creates a transport error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Whether retrying the same operation later may succeed.
    public var isTransient: Bool {
        code == .timeout || code == .cancelled || code == .unavailable || code == .failed
    }

    public var description: String { "box transport error (\(code)): \(message)" }
}
