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
/// Operations take completion callbacks (``startWrite(index:bytes:completion:)``,
/// ``startRead(index:mode:completion:)``), so that a store that can answer at once (as an
/// in-memory one does) completes an operation inside the call, without a task or a task
/// switch. The async forms, ``write(index:bytes:)`` and ``read(index:mode:)``, are wrappers over
/// them; a channel whose work is asynchronous anyway implements the callback forms with
/// ``BoxOperation/task(_:completion:)`` over its own async code.
///
/// The contract of both callback forms:
///
/// - The completion is called exactly once, on any thread: inside the `start…` call (before it
///   returns), or later from another thread. A caller must not do work in the completion that
///   expects to run outside its own `start…` call (such as running a state machine that may be
///   in the middle of a step): queue the outcome instead.
/// - The returned ``BoxOperation`` cancels the operation; the completion still runs once (see
///   ``BoxOperation``), possibly inside ``BoxOperation/cancel()``.
///
/// - Important: writes must be idempotent for identical bytes: writing the same bytes to the
///   same index again succeeds. Writing different bytes to a box that already holds something
///   fails with ``BoxTransportError/Code-swift.struct/alreadyExists``.
public protocol BoxChannel: Sendable {
    /// The exact number of bytes every box holds.
    var payloadSize: Int { get }

    /// Starts writing `bytes` (exactly ``payloadSize`` long) into box `index`; `completion`
    /// gets the outcome.
    ///
    /// Success means the transport accepted the write. It does not prove the box is stored:
    /// lossy transports may still drop it, which the stream protocol recovers from.
    ///
    /// - Returns: the operation, to cancel it; ``BoxOperation/completed`` if `completion` has run.
    func startWrite(
        index: UInt64, bytes: [UInt8], completion: @escaping @Sendable (Result<Void, BoxTransportError>) -> Void
    ) -> BoxOperation

    /// Starts reading box `index`; `completion` gets the box's bytes, or `nil` if the box has
    /// not been written yet (at once for ``BoxReadMode/poll``; for ``BoxReadMode/wait`` once the
    /// transport stops waiting).
    ///
    /// - Returns: the operation, to cancel it; ``BoxOperation/completed`` if `completion` has run.
    func startRead(
        index: UInt64, mode: BoxReadMode, completion: @escaping @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void
    ) -> BoxOperation
}

extension BoxChannel {
    /// Writes `bytes` (exactly ``payloadSize`` long) into box `index`: the async form of
    /// ``startWrite(index:bytes:completion:)``.
    ///
    /// Returning normally means the transport accepted the write. Cancelling the calling task
    /// cancels the write.
    ///
    /// - Throws: a ``BoxTransportError`` (``BoxTransportError/Code-swift.struct/cancelled`` if
    ///   the task was cancelled).
    public func write(index: UInt64, bytes: [UInt8]) async throws {
        try await BoxOperation.value { startWrite(index: index, bytes: bytes, completion: $0) }
    }

    /// Reads box `index`: the async form of ``startRead(index:mode:completion:)``.
    ///
    /// Cancelling the calling task cancels the read.
    ///
    /// - Returns: the box's bytes, or `nil` if the box has not been written yet.
    /// - Throws: a ``BoxTransportError`` (``BoxTransportError/Code-swift.struct/cancelled`` if
    ///   the task was cancelled).
    public func read(index: UInt64, mode: BoxReadMode) async throws -> [UInt8]? {
        try await BoxOperation.value { startRead(index: index, mode: mode, completion: $0) }
    }
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

    /// Classifies any error from a transport: a ``BoxTransportError`` as it is,
    /// `CancellationError` as ``Code-swift.struct/cancelled``, anything else as
    /// ``Code-swift.struct/failed`` with the error's description.
    public init(classifying error: any Error) {
        if let error = error as? BoxTransportError {
            self = error
        } else if error is CancellationError {
            self.init(.cancelled, "cancelled")
        } else {
            self.init(.failed, String(describing: error))
        }
    }

    /// Whether retrying the same operation later may succeed.
    public var isTransient: Bool {
        code == .timeout || code == .cancelled || code == .unavailable || code == .failed
    }

    public var description: String { "box transport error (\(code)): \(message)" }
}
