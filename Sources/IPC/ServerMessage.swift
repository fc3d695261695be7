import CBOR

/// One message from the daemon to an app: a reply, an event or a goodbye.
///
/// Wire forms (maps): a reply has `id` and either `reply` (the ``IPCReplyKind``) with its fields
/// or `error` (an error map); an event has `event` (its kind) and its fields; a goodbye has
/// `goodbye` (an error map) and nothing else that matters. Replies are self-describing, so a
/// client needs no table of pending request kinds to decode them.
public enum IPCServerMessage: Sendable, Hashable {
    /// The answer to request `id`.
    case reply(id: UInt64, Result<IPCReply, IPCError>)
    /// An event for a subscribed connection.
    case event(IPCEvent)
    /// The daemon closes the connection after this message, for the given reason: a frame it
    /// could not decode or without a readable `id` (`malformed`, `frameTooLarge`,
    /// `invalidArgument`), a stalled half frame, `shuttingDown`, `permissionDenied`.
    case goodbye(IPCError)

    /// The CBOR map, without the frame's length prefix.
    public var cborValue: CBORValue {
        switch self {
        case .reply(let id, .success(let reply)):
            return .textMap([(IPCKey.id, .unsigned(id)), (IPCKey.reply, .text(reply.kind.rawValue))] + reply.fields)
        case .reply(let id, .failure(let error)):
            return .textMap([(IPCKey.id, .unsigned(id)), (IPCKey.error, error.cborValue)])
        case .event(let event):
            return .textMap([(IPCKey.event, .text(event.kind))] + event.fields)
        case .goodbye(let error):
            return .textMap([(IPCKey.goodbye, error.cborValue)])
        }
    }

    /// The payload: the CBOR map, without the length prefix.
    public func encoded() -> [UInt8] { cborValue.encoded() }

    /// The complete frame: length prefix and payload.
    public func framed() -> [UInt8] {
        if case .reply(let id, .success(.written(let accepted, let offset))) = self {
            return WriteFastPath.framedWritten(id: id, accepted: accepted, offset: offset)
        }
        return IPCFraming.frame(encoded())
    }

    /// Decodes a payload (a frame without its length prefix).
    ///
    /// A map with `event` is an event, else one with `goodbye` a goodbye, else one with `id` a
    /// reply. Unknown keys are ignored. Errors inside replies and events decode with
    /// ``IPCError/requestID`` `nil`.
    ///
    /// - Throws: ``IPCError``: `frameTooLarge` or `malformed` if the payload is not one CBOR map
    ///   within the limits (or a map that is none of the three forms); `unknownOperation` for a
    ///   reply or event kind this module does not know (a client may skip such events);
    ///   `invalidArgument` naming a bad field (with ``IPCError/requestID`` set for replies).
    public init(decoding payload: [UInt8]) throws(IPCError) {
        // A `written` reply exactly as encoders write it is read in place; anything else, and
        // every error, comes from the bounded general decoder below.
        if let message = WriteFastPath.decodeWritten(payload) {
            self = message
            return
        }
        try self.init(decodingTree: payload)
    }

    /// Decodes a payload through a ``CBOR/CBORValue`` tree with the bounded decoder: any
    /// message, and every error of ``init(decoding:)``.
    init(decodingTree payload: [UInt8]) throws(IPCError) {
        let value = try decodePayload(payload, limits: IPCLimits.serverCBORLimits, what: "server message")
        var fields = try IPCFields(value, what: "server message")
        if fields.has(IPCKey.event) {
            let kind = try fields.text(IPCKey.event, max: IPCLimits.maxOperationLength)
            self = .event(try IPCEvent(kind: kind, fields: fields))
        } else if fields.has(IPCKey.goodbye) {
            self = .goodbye(try IPCError(fields: fields.map(IPCKey.goodbye)))
        } else if fields.has(IPCKey.id) {
            let id = try fields.uint(IPCKey.id)
            fields.requestID = id
            if fields.has(IPCKey.error) {
                self = .reply(id: id, .failure(try IPCError(fields: fields.map(IPCKey.error))))
                return
            }
            let kindText = try fields.text(IPCKey.reply, max: IPCLimits.maxOperationLength)
            guard let kind = IPCReplyKind(rawValue: kindText) else {
                throw IPCError(.unknownOperation, "unknown reply kind \(kindText.debugDescription)", requestID: id)
            }
            self = .reply(id: id, .success(try IPCReply(kind: kind, fields: fields)))
        } else {
            throw IPCError(.malformed, "server message has none of the keys event, goodbye and id")
        }
    }
}
