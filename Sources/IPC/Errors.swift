import CBOR

/// An error of the app protocol: sent by the daemon in error replies, `stream_failed` events and
/// `goodbye` messages, and thrown by this module's decoders.
///
/// Codes are stable numbers with stable names (docs/IPC.md has the table). Messages are for
/// humans and never contain secrets (addresses, keys) or data bytes.
public struct IPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable numeric error code with a stable name.
    ///
    /// Codes from a newer peer that this module does not know decode as themselves
    /// (``init(number:)``); their ``name`` is `unknown` followed by the number.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: UInt64, CaseIterable {
            case malformed = 1, frameTooLarge, unsupportedVersion, helloRequired, unknownOperation
            case invalidArgument, invalidName, nameInUse, noSuchStream, invalidAddress
            case wrongOffset, busy, closed, readOnly, writeOnly
            case streamFailed, damaged, tooManyRequests, shuttingDown, permissionDenied
            case `internal`, kpclientdUnavailable
        }

        /// The code's stable number, as sent on the wire.
        public let number: UInt64

        private init(_ backing: Backing) { number = backing.rawValue }

        /// The code with this number, known or not.
        public init(number: UInt64) { self.number = number }

        /// The known code with this stable name, or `nil`.
        public init?(name: String) {
            guard let backing = Backing.allCases.first(where: { "\($0)" == name }) else { return nil }
            self.init(backing)
        }

        /// Every code this module knows, in numeric order.
        public static var allKnown: [Code] { Backing.allCases.map(Code.init) }

        /// 1: a frame is not a CBOR map, or not decodable at all; the connection is closed.
        public static let malformed = Code(.malformed)
        /// 2: a length prefix announces more than ``IPCLimits/maxFrameSize``; the connection is closed.
        public static let frameTooLarge = Code(.frameTooLarge)
        /// 3: `hello` offered no version the daemon speaks.
        public static let unsupportedVersion = Code(.unsupportedVersion)
        /// 4: a request other than `hello` came before a successful `hello`.
        public static let helloRequired = Code(.helloRequired)
        /// 5: the `op` is not one the daemon knows.
        public static let unknownOperation = Code(.unknownOperation)
        /// 6: a field is missing, has the wrong type or is out of range (the message names it).
        public static let invalidArgument = Code(.invalidArgument)
        /// 7: a stream name breaks the naming rules.
        public static let invalidName = Code(.invalidName)
        /// 8: `create` or `join` named a stream that exists.
        public static let nameInUse = Code(.nameInUse)
        /// 9: no stream has this name.
        public static let noSuchStream = Code(.noSuchStream)
        /// 10: a stream address does not parse or has the wrong kind.
        public static let invalidAddress = Code(.invalidAddress)
        /// 11: a `write` or `consume` offset is not where the stream is; see ``IPCError/expectedOffset``.
        public static let wrongOffset = Code(.wrongOffset)
        /// 12: the daemon cannot take this now; retry, after ``IPCError/retryAfterMilliseconds`` if given.
        public static let busy = Code(.busy)
        /// 13: the direction is closed (write after `close`).
        public static let closed = Code(.closed)
        /// 14: the stream only reads (a multicast reader).
        public static let readOnly = Code(.readOnly)
        /// 15: the stream only writes (a multicast writer).
        public static let writeOnly = Code(.writeOnly)
        /// 16: the stream failed permanently (transport or protocol).
        public static let streamFailed = Code(.streamFailed)
        /// 17: the stream's stored state is damaged.
        public static let damaged = Code(.damaged)
        /// 18: the connection has too many requests in flight.
        public static let tooManyRequests = Code(.tooManyRequests)
        /// 19: the daemon is shutting down.
        public static let shuttingDown = Code(.shuttingDown)
        /// 20: the peer is not allowed to use the daemon.
        public static let permissionDenied = Code(.permissionDenied)
        /// 21: a bug or unexpected local failure in the daemon.
        public static let `internal` = Code(.internal)
        /// 22: kpclientd is not connected and the request needs it.
        public static let kpclientdUnavailable = Code(.kpclientdUnavailable)

        /// Whether this module knows the code.
        public var isKnown: Bool { Backing(rawValue: number) != nil }

        /// The code's stable name, such as `wrongOffset`; `unknown<number>` for unknown codes.
        public var name: String {
            Backing(rawValue: number).map { "\($0)" } ?? "unknown\(number)"
        }

        /// The name and number, such as `wrongOffset(11)`.
        public var description: String { "\(name)(\(number))" }
    }

    /// The stable code.
    public var code: Code
    /// A human-readable explanation, without secrets.
    public var message: String
    /// For ``Code-swift.struct/wrongOffset``: the offset the daemon expected.
    public var expectedOffset: UInt64?
    /// For ``Code-swift.struct/busy``: how long to wait before retrying.
    public var retryAfterMilliseconds: UInt64?
    /// The id of the request this error answers, when a decoder could read it.
    ///
    /// ``IPCRequestMessage/init(decoding:)`` sets it as soon as the `id` field is read, so a
    /// server can reply to a request it cannot otherwise decode; `nil` means the frame has no
    /// readable id. It is not sent on the wire inside the error (the reply carries the id).
    public var requestID: UInt64?

    /// Creates an error.
    public init(
        _ code: Code, _ message: String,
        expectedOffset: UInt64? = nil, retryAfterMilliseconds: UInt64? = nil, requestID: UInt64? = nil
    ) {
        self.code = code
        self.message = message
        self.expectedOffset = expectedOffset
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.requestID = requestID
    }

    /// The code and message on one line.
    public var description: String { "IPC error \(code): \(message)" }
}

extension IPCError {
    /// The error's wire form: a map with `code`, `name`, `message` and, when set,
    /// `expected_offset` and `retry_after_ms`. The message is truncated to ``IPCLimits/maxTextLength``.
    public var cborValue: CBORValue {
        var pairs: [(String, CBORValue)] = [
            (IPCKey.code, .unsigned(code.number)),
            (IPCKey.name, .text(code.name)),
            (IPCKey.message, .text(truncated(message))),
        ]
        if let expectedOffset { pairs.append((IPCKey.expectedOffset, .unsigned(expectedOffset))) }
        if let retryAfterMilliseconds { pairs.append((IPCKey.retryAfter, .unsigned(retryAfterMilliseconds))) }
        return .textMap(pairs)
    }

    /// Decodes an error map (the inverse of ``cborValue``); `name` is informational and ignored.
    ///
    /// - Throws: ``IPCError`` with code `invalidArgument` naming a bad field.
    public init(cbor value: CBORValue) throws(IPCError) {
        let fields = try IPCFields(value, what: "error")
        try self.init(fields: fields)
    }

    init(fields: IPCFields) throws(IPCError) {
        self.init(
            Code(number: try fields.uint(IPCKey.code)),
            try fields.text(IPCKey.message, max: IPCLimits.maxTextLength),
            expectedOffset: try fields.optionalUInt(IPCKey.expectedOffset),
            retryAfterMilliseconds: try fields.optionalUInt(IPCKey.retryAfter))
    }
}

/// `text` cut to at most ``IPCLimits/maxTextLength`` UTF-8 bytes, on a scalar boundary.
func truncated(_ text: String, to limit: Int = IPCLimits.maxTextLength) -> String {
    guard text.utf8.count > limit else { return text }
    var result = ""
    var used = 0
    for scalar in text.unicodeScalars {
        let size = String(scalar).utf8.count
        guard used + size <= limit else { break }
        result.unicodeScalars.append(scalar)
        used += size
    }
    return result
}
