import CBOR

/// How a created stream is used.
public enum IPCStreamMode: String, Sendable, Hashable, CaseIterable {
    /// A two-way stream; the creator listens and hands its address to one dialer.
    case stream
    /// A one-to-many stream; the creator writes and hands read-only addresses to readers.
    case multicast
}

/// One request from an app to the daemon.
public enum IPCRequest: Sendable, Hashable {
    /// Opens the session: offers versions `minVersion...maxVersion`; must be the first request. Reply: ``IPCReply/hello(version:daemon:instance:features:)``.
    case hello(minVersion: UInt64, maxVersion: UInt64, client: String?)
    /// Creates a stream: a listener (`.stream`) or a multicast writer (`.multicast`). Reply: ``IPCReply/created(_:address:)``.
    case create(name: StreamName, mode: IPCStreamMode)
    /// Joins a stream by address: as its dialer, or as a multicast reader with a read-only address. Reply: ``IPCReply/created(_:address:)``.
    case join(name: StreamName, address: String)
    /// Lists every stream. Reply: ``IPCReply/list(_:)``.
    case list
    /// Describes one stream. Reply: ``IPCReply/status(_:)``.
    case status(name: StreamName)
    /// Returns the stream's address (full, or read-only for multicast). Reply: ``IPCReply/address(_:)``.
    case address(name: StreamName, readOnly: Bool)
    /// Half-closes the app's own direction; with `wait`, replies once the peer acknowledged the end. Reply: ``IPCReply/ok``.
    case close(name: StreamName, wait: Bool)
    /// Deletes the stream and all its state. Reply: ``IPCReply/ok``.
    case remove(name: StreamName)
    /// Writes `data`, which starts at stream byte `offset` (idempotent). Reply: ``IPCReply/written(accepted:offset:)``.
    case write(name: StreamName, offset: UInt64, data: [UInt8])
    /// Reads up to `maxLength` received bytes from `offset` without consuming them; with `wait`, long-polls until there is data or the end. Reply: ``IPCReply/data(offset:bytes:end:)``.
    case read(name: StreamName, offset: UInt64, maxLength: Int, wait: Bool)
    /// Tells the daemon the app processed every byte before `offset`. Reply: ``IPCReply/consumed(offset:)`` once durable.
    case consume(name: StreamName, offset: UInt64)
    /// Replies once the peer acknowledged every byte written so far. Reply: ``IPCReply/ok``.
    case sync(name: StreamName)
    /// Subscribes this connection to events of the named streams (`nil`: all, including later ones). Reply: ``IPCReply/ok``.
    case subscribe(names: [StreamName]?)
    /// Describes the daemon. Reply: ``IPCReply/daemonStatus(_:)``.
    case daemonStatus

    /// The operation's wire name (the `op` field), such as `daemon_status`.
    public var operation: String {
        switch self {
        case .hello: "hello"
        case .create: "create"
        case .join: "join"
        case .list: "list"
        case .status: "status"
        case .address: "address"
        case .close: "close"
        case .remove: "remove"
        case .write: "write"
        case .read: "read"
        case .consume: "consume"
        case .sync: "sync"
        case .subscribe: "subscribe"
        case .daemonStatus: "daemon_status"
        }
    }

    /// The kind of successful reply this request gets.
    public var replyKind: IPCReplyKind {
        switch self {
        case .hello: .hello
        case .create, .join: .created
        case .list: .list
        case .status: .status
        case .address: .address
        case .close, .remove, .sync, .subscribe: .ok
        case .write: .written
        case .read: .data
        case .consume: .consumed
        case .daemonStatus: .daemonStatus
        }
    }

    /// The stream the request is about, if it names exactly one.
    public var streamName: StreamName? {
        switch self {
        case .create(let name, _), .join(let name, _), .status(let name), .address(let name, _), .close(let name, _),
            .remove(let name), .write(let name, _, _), .read(let name, _, _, _), .consume(let name, _), .sync(let name):
            name
        case .hello, .list, .subscribe, .daemonStatus:
            nil
        }
    }

    /// The request's fields after `id` and `op`, in wire order.
    var fields: [(String, CBORValue)] {
        switch self {
        case .hello(let minVersion, let maxVersion, let client):
            var pairs: [(String, CBORValue)] = [(IPCKey.minVersion, .unsigned(minVersion)), (IPCKey.maxVersion, .unsigned(maxVersion))]
            if let client { pairs.append((IPCKey.client, .text(truncated(client)))) }
            return pairs
        case .create(let name, let mode):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.mode, .text(mode.rawValue))]
        case .join(let name, let address):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.address, .text(address))]
        case .list, .daemonStatus:
            return []
        case .status(let name), .remove(let name), .sync(let name):
            return [(IPCKey.name, .text(name.rawValue))]
        case .address(let name, let readOnly):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.readOnly, .bool(readOnly))]
        case .close(let name, let wait):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.wait, .bool(wait))]
        case .write(let name, let offset, let data):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.offset, .unsigned(offset)), (IPCKey.data, .bytes(data))]
        case .read(let name, let offset, let maxLength, let wait):
            return [
                (IPCKey.name, .text(name.rawValue)), (IPCKey.offset, .unsigned(offset)),
                (IPCKey.maxLength, .unsigned(UInt64(max(0, maxLength)))), (IPCKey.wait, .bool(wait)),
            ]
        case .consume(let name, let offset):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.offset, .unsigned(offset))]
        case .subscribe(let names):
            guard let names else { return [] }
            return [(IPCKey.names, .array(names.map { .text($0.rawValue) }))]
        }
    }

    /// Decodes the fields of operation `operation`.
    init(operation: String, fields: IPCFields) throws(IPCError) {
        switch operation {
        case "hello":
            self = .hello(
                minVersion: try fields.uint(IPCKey.minVersion), maxVersion: try fields.uint(IPCKey.maxVersion),
                client: try fields.optionalText(IPCKey.client, max: IPCLimits.maxTextLength))
        case "create":
            self = .create(name: try fields.name(), mode: try fields.enumeration(IPCKey.mode, IPCStreamMode.self))
        case "join":
            self = .join(name: try fields.name(), address: try fields.text(IPCKey.address, max: IPCLimits.maxAddressLength))
        case "list":
            self = .list
        case "status":
            self = .status(name: try fields.name())
        case "address":
            self = .address(name: try fields.name(), readOnly: try fields.flag(IPCKey.readOnly))
        case "close":
            self = .close(name: try fields.name(), wait: try fields.flag(IPCKey.wait))
        case "remove":
            self = .remove(name: try fields.name())
        case "write":
            self = .write(
                name: try fields.name(), offset: try fields.uint(IPCKey.offset),
                data: try fields.bytes(IPCKey.data, max: IPCLimits.maxChunk))
        case "read":
            let maxLength = try fields.uint(IPCKey.maxLength)
            guard (1...UInt64(IPCLimits.maxChunk)).contains(maxLength) else {
                throw fields.invalid(IPCKey.maxLength, "must be between 1 and \(IPCLimits.maxChunk)")
            }
            self = .read(
                name: try fields.name(), offset: try fields.uint(IPCKey.offset), maxLength: Int(maxLength),
                wait: try fields.flag(IPCKey.wait))
        case "consume":
            self = .consume(name: try fields.name(), offset: try fields.uint(IPCKey.offset))
        case "sync":
            self = .sync(name: try fields.name())
        case "subscribe":
            guard fields.has(IPCKey.names) else {
                self = .subscribe(names: nil)
                return
            }
            var names: [StreamName] = []
            for element in try fields.array(IPCKey.names, max: IPCLimits.maxSubscribeNames) {
                guard let text = element.text else { throw fields.invalid(IPCKey.names, "must hold only text strings") }
                names.append(try fields.streamName(text))
            }
            self = .subscribe(names: names)
        case "daemon_status":
            self = .daemonStatus
        default:
            throw IPCError(.unknownOperation, "unknown operation \(operation.debugDescription)", requestID: fields.requestID)
        }
    }
}

/// A request with the id its reply will carry: the unit an app sends.
///
/// Wire form: a map with `id` (unsigned), `op` (text) and the operation's fields.
public struct IPCRequestMessage: Sendable, Hashable {
    /// Chosen by the app; the reply carries it back. Ids of requests in flight on one
    /// connection should be distinct.
    public var id: UInt64
    /// The request.
    public var request: IPCRequest

    /// Creates a request message.
    public init(id: UInt64, request: IPCRequest) {
        self.id = id
        self.request = request
    }

    /// The CBOR map, without the frame's length prefix.
    public var cborValue: CBORValue {
        .textMap([(IPCKey.id, .unsigned(id)), (IPCKey.op, .text(request.operation))] + request.fields)
    }

    /// The payload: the CBOR map, without the length prefix.
    public func encoded() -> [UInt8] { cborValue.encoded() }

    /// The complete frame: length prefix and payload.
    public func framed() -> [UInt8] {
        if case .write(let name, let offset, let data) = request {
            return WriteFastPath.framedWrite(id: id, name: name, offset: offset, data: data)
        }
        return IPCFraming.frame(encoded())
    }

    /// Decodes a payload (a frame without its length prefix).
    ///
    /// Unknown keys are ignored.
    ///
    /// - Throws: ``IPCError``: `frameTooLarge` or `malformed` if the payload is not one CBOR map
    ///   within the limits; `invalidArgument` naming the field if `id` is missing or not an
    ///   unsigned integer; then, with ``IPCError/requestID`` set, `unknownOperation`,
    ///   `invalidArgument` (naming the field) or `invalidName`.
    public init(decoding payload: [UInt8]) throws(IPCError) {
        // A `write` exactly as encoders write it is read in place; anything else, and every
        // error, comes from the bounded general decoder below.
        if let message = WriteFastPath.decodeWrite(payload) {
            self = message
            return
        }
        try self.init(decodingTree: payload)
    }

    /// Decodes a payload through a ``CBOR/CBORValue`` tree with the bounded decoder: any
    /// request, and every error of ``init(decoding:)``.
    init(decodingTree payload: [UInt8]) throws(IPCError) {
        let value = try decodePayload(payload, limits: IPCLimits.requestCBORLimits, what: "request")
        var fields = try IPCFields(value, what: "request")
        let id = try fields.uint(IPCKey.id)
        fields.requestID = id
        guard let operation = try fields.required(IPCKey.op).text else {
            throw fields.invalid(IPCKey.op, "must be a text string")
        }
        guard operation.utf8.count <= IPCLimits.maxOperationLength else {
            throw IPCError(.unknownOperation, "unknown operation of \(operation.utf8.count) bytes", requestID: id)
        }
        self.init(id: id, request: try IPCRequest(operation: operation, fields: fields))
    }
}
