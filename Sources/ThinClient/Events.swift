import CBOR
import ThinWire

/// What kpclientd last said about itself in a `connection_status_event`.
public struct DaemonStatus: Sendable, Hashable {
    /// Whether the daemon has a link to a mixnet gateway (not whether the local socket is up).
    public var isConnected: Bool
    /// The daemon's instance token: 16 random bytes fixed for the daemon process's lifetime.
    public var instanceToken: [UInt8]
    /// The Sphinx geometry, if the daemon sent one.
    public var sphinxGeometry: SphinxGeometry?
    /// The Pigeonhole geometry, if the daemon sent one.
    public var pigeonholeGeometry: PigeonholeGeometry?

    init(message fields: ThinFields) throws(ThinWireError) {
        isConnected = try fields.optionalBool(ThinKey.Field.isConnected) ?? false
        instanceToken = try fields.optionalBytes(ThinKey.Field.instanceToken, length: ThinSizes.instanceToken) ?? []
        if let raw = fields.raw(ThinKey.Field.sphinxGeometry) {
            sphinxGeometry = try SphinxGeometry(cbor: raw)
        }
        if let raw = fields.raw(ThinKey.Field.pigeonholeGeometry) {
            pigeonholeGeometry = try PigeonholeGeometry(cbor: raw)
        }
    }
}

/// A PKI document pushed by kpclientd in a `new_pki_document_event`.
public struct PKIDocument: Sendable, Hashable {
    /// The CBOR-encoded document, signatures stripped, exactly as received.
    public var payload: [UInt8]
    /// The decoded document (a map with the Go field names of `core/pki.Document`), or `nil`
    /// if it could not be decoded.
    public var document: CBORValue?

    /// Wraps an encoded document, decoding it if possible.
    public init(payload: [UInt8]) {
        self.payload = payload
        self.document = try? ThinFrame.decodeBody(payload)
    }

    /// The document's `Epoch`, if present.
    public var epoch: UInt64? { document?["Epoch"]?.uint64 }

    /// The services advertising `capability` (for example `"echo"` or `"courier"`).
    ///
    /// Every entry of `ServiceNodes` is a CBOR-encoded `MixDescriptor`; a node offers the
    /// capability when its `Kaetzchen` map has the key, with an `endpoint` string.
    public func services(capability: String) -> [ServiceDescriptor] {
        guard let nodes = document?["ServiceNodes"]?.array else { return [] }
        var found: [ServiceDescriptor] = []
        for node in nodes {
            let descriptor: CBORValue?
            if let encoded = node.bytes {
                descriptor = try? ThinFrame.decodeBody(encoded)
            } else {
                descriptor = node
            }
            guard let descriptor,
                let service = descriptor["Kaetzchen"]?[capability],
                let endpoint = service["endpoint"]?.text,
                let identityKey = descriptor["IdentityKey"]?.bytes
            else { continue }
            found.append(ServiceDescriptor(nodeName: descriptor["Name"]?.text ?? "", identityKey: identityKey, endpoint: endpoint))
        }
        return found
    }
}

/// A `message_sent_event`: kpclientd sent (or failed to send) a `send_message` with a SURB.
public struct MessageSentEvent: Sendable, Hashable {
    /// The optional message ID of the request.
    public var messageID: [UInt8]?
    /// The SURB ID the message was sent with.
    public var surbID: [UInt8]
    /// When it was sent (Unix seconds), if reported.
    public var sentAt: UInt64?
    /// The estimated round trip, if reported.
    public var replyETA: Duration?
    /// The daemon's error text, if sending failed (for example "message too large").
    public var error: String?
}

/// A `message_reply_event`: the SURB reply to a `send_message`.
public struct MessageReplyEvent: Sendable, Hashable {
    /// The optional message ID of the request.
    public var messageID: [UInt8]?
    /// The SURB ID the message was sent with.
    public var surbID: [UInt8]
    /// The reply payload.
    public var payload: [UInt8]
    /// The reply index, if present (current daemons omit it).
    public var replyIndex: UInt8?
    /// The error code (thin-client namespace); 0 for success.
    public var errorCode: UInt8
}

/// An event from a ``ThinClient``: a daemon event or a change of the local connection.
public enum ThinClientEvent: Sendable, Hashable {
    /// The local connection completed its handshake (`resumed` tells whether the daemon
    /// resumed the previous session).
    case connected(resumed: Bool)
    /// The local connection to kpclientd was lost; the client reconnects unless it was closed.
    ///
    /// `graceful` is true when the daemon announced its shutdown first.
    case disconnected(graceful: Bool)
    /// A `connection_status_event`.
    case connectionStatus(DaemonStatus)
    /// A `new_pki_document_event`; `nil` when the daemon had no document.
    case newPKIDocument(PKIDocument?)
    /// A `message_sent_event`.
    case messageSent(MessageSentEvent)
    /// A `message_reply_event`.
    case messageReply(MessageReplyEvent)
    /// A `message_id_garbage_collected` event.
    case messageIDGarbageCollected(messageID: [UInt8])
    /// A `shutdown_event`: the daemon is about to close the connection.
    case shutdown
    /// A message this client does not know, identified by its key.
    case unknown(key: String)
}

extension MessageSentEvent {
    init(fields: ThinFields) throws(ThinWireError) {
        messageID = try fields.optionalBytes(ThinKey.Field.messageID, length: ThinSizes.messageID)
        surbID = try fields.bytes(ThinKey.Field.surbID, length: ThinSizes.surbID)
        sentAt = try fields.optionalUInt(ThinKey.Field.sentAt)
        if fields.contains(ThinKey.Field.replyETA) {
            replyETA = .nanoseconds(try fields.int(ThinKey.Field.replyETA))
        }
        let text = try fields.optionalText(ThinKey.Field.err)
        error = (text?.isEmpty ?? true) ? nil : text
    }
}

extension MessageReplyEvent {
    init(fields: ThinFields) throws(ThinWireError) {
        messageID = try fields.optionalBytes(ThinKey.Field.messageID, length: ThinSizes.messageID)
        surbID = try fields.bytes(ThinKey.Field.surbID, length: ThinSizes.surbID)
        payload = try fields.optionalBytes(ThinKey.Field.payload) ?? []
        if let index = try fields.optionalUInt(ThinKey.Field.replyIndex) {
            guard index <= UInt64(UInt8.max) else {
                throw ThinWireError(.wrongType, "message_reply_event.reply_index must be an integer in 0...255")
            }
            replyIndex = UInt8(index)
        }
        errorCode = try fields.errorCode()
    }
}
