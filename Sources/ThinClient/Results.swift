import CBOR
import ThinWire

/// The capabilities of a new Pigeonhole stream, from ``ThinClient/newKeypair(seed:)``.
public struct NewKeypair: Sendable, Hashable {
    /// The write capability (secret).
    public var writeCapability: WriteCapability
    /// The read capability to share with readers (secret).
    public var readCapability: ReadCapability
    /// The index of the stream's first box.
    public var firstMessageIndex: MessageBoxIndex
}

/// An encrypted Pigeonhole query from ``ThinClient/encryptRead(readCapability:index:)`` or
/// ``ThinClient/encryptWrite(plaintext:writeCapability:index:)``, ready for
/// ``ThinClient/startResendingEncryptedMessage(_:)``.
public struct EncryptedMessage: Sendable, Hashable {
    /// The serialized CourierQuery.
    public var messageCiphertext: [UInt8]
    /// Opaque CBOR holding the reply-decryption key, epoch and replica numbers (secret).
    public var envelopeDescriptor: [UInt8]
    /// BLAKE2b-256 of the envelope; unique per call. Used to cancel the resending.
    public var envelopeHash: [UInt8]
    /// The BACAP successor of the index the message was encrypted for.
    public var nextMessageBoxIndex: MessageBoxIndex

    /// Creates an encrypted message from its parts, as a daemon returned them.
    public init(messageCiphertext: [UInt8], envelopeDescriptor: [UInt8], envelopeHash: [UInt8], nextMessageBoxIndex: MessageBoxIndex) {
        self.messageCiphertext = messageCiphertext
        self.envelopeDescriptor = envelopeDescriptor
        self.envelopeHash = envelopeHash
        self.nextMessageBoxIndex = nextMessageBoxIndex
    }
}

/// What ``ThinClient/startResendingEncryptedMessage(_:)`` sends: one encrypted read or write.
public struct ResendingRequest: Sendable, Hashable {
    /// The read capability, for a read (exactly one of the two capabilities is set).
    public var readCapability: ReadCapability?
    /// The write capability, for a write (exactly one of the two capabilities is set).
    public var writeCapability: WriteCapability?
    /// The box index. Required for reads: without it the daemon skips BACAP decryption.
    public var messageBoxIndex: MessageBoxIndex?
    /// The encrypted query.
    public var message: EncryptedMessage
    /// The reply index; kpclientd ignores it today.
    public var replyIndex: UInt8?
    /// For reads: answer ``ThinClientError/Code-swift.struct/boxIDNotFound`` at once instead of
    /// waiting for the box to be written.
    public var noRetryOnBoxIDNotFound: Bool
    /// For writes: wait for the replica's own result, so that
    /// ``ThinClientError/Code-swift.struct/boxAlreadyExists`` and other replica errors surface.
    public var noIdempotentBoxAlreadyExists: Bool
    /// When the client gives up on the request: cancels it at the daemon and throws
    /// ``ThinClientError/Code-swift.struct/timeout``. Not sent on the wire.
    public var deadline: OperationDeadline = .automatic

    /// A read of the box at `index` through `readCapability`.
    public static func read(
        _ message: EncryptedMessage, readCapability: ReadCapability, index: MessageBoxIndex, noRetryOnBoxIDNotFound: Bool = false
    ) -> ResendingRequest {
        ResendingRequest(
            readCapability: readCapability, writeCapability: nil, messageBoxIndex: index, message: message, replyIndex: nil,
            noRetryOnBoxIDNotFound: noRetryOnBoxIDNotFound, noIdempotentBoxAlreadyExists: false
        )
    }

    /// A write through `writeCapability`.
    public static func write(
        _ message: EncryptedMessage, writeCapability: WriteCapability, noIdempotentBoxAlreadyExists: Bool = false
    ) -> ResendingRequest {
        ResendingRequest(
            readCapability: nil, writeCapability: writeCapability, messageBoxIndex: nil, message: message, replyIndex: nil,
            noRetryOnBoxIDNotFound: false, noIdempotentBoxAlreadyExists: noIdempotentBoxAlreadyExists
        )
    }

    /// Creates a request from all of its fields; prefer ``read(_:readCapability:index:noRetryOnBoxIDNotFound:)``
    /// and ``write(_:writeCapability:noIdempotentBoxAlreadyExists:)``.
    public init(
        readCapability: ReadCapability?, writeCapability: WriteCapability?, messageBoxIndex: MessageBoxIndex?,
        message: EncryptedMessage, replyIndex: UInt8?, noRetryOnBoxIDNotFound: Bool, noIdempotentBoxAlreadyExists: Bool
    ) {
        self.readCapability = readCapability
        self.writeCapability = writeCapability
        self.messageBoxIndex = messageBoxIndex
        self.message = message
        self.replyIndex = replyIndex
        self.noRetryOnBoxIDNotFound = noRetryOnBoxIDNotFound
        self.noIdempotentBoxAlreadyExists = noIdempotentBoxAlreadyExists
    }
}

/// The successful outcome of ``ThinClient/startResendingEncryptedMessage(_:)``.
public struct ResendingResult: Sendable, Hashable {
    /// The box's plaintext for a read; `nil` for a write. A tombstone read may give `nil` or `[]`.
    public var plaintext: [UInt8]?
    /// The BLAKE2b-256 identity hash of the courier that served the request, if reported.
    public var courierIdentityHash: [UInt8]?
    /// The courier's queue ID, if reported.
    public var courierQueueID: [UInt8]?
}

/// Copy-stream elements from ``ThinClient/createCourierEnvelopesFromPayload(_:destinationWriteCapability:destinationStartIndex:isStart:isLast:)``
/// or ``ThinClient/createCourierEnvelopesFromTombstoneRange(destinationWriteCapability:destinationStartIndex:maxCount:isStart:isLast:buffer:)``.
public struct CourierEnvelopes: Sendable, Hashable {
    /// The copy-stream elements, each at most `MaxPlaintextPayloadLength` bytes.
    public var envelopes: [[UInt8]]
    /// The residual encoder bytes to pass to the next call (tombstone ranges only; `nil` otherwise
    /// and when `isLast`).
    public var buffer: [UInt8]?
    /// The destination index after the last box covered.
    public var nextDestinationIndex: MessageBoxIndex
}

/// One destination of ``ThinClient/createCourierEnvelopesFromMultiPayload(_:isStart:isLast:buffer:)``.
public struct CourierDestination: Sendable, Hashable {
    /// The bytes to write.
    public var payload: [UInt8]
    /// The destination stream's write capability.
    public var writeCapability: WriteCapability
    /// The first destination box.
    public var startIndex: MessageBoxIndex

    /// Creates a destination.
    public init(payload: [UInt8], writeCapability: WriteCapability, startIndex: MessageBoxIndex) {
        self.payload = payload
        self.writeCapability = writeCapability
        self.startIndex = startIndex
    }
}

/// Copy-stream elements for several destinations, from
/// ``ThinClient/createCourierEnvelopesFromMultiPayload(_:isStart:isLast:buffer:)``.
public struct MultiPayloadEnvelopes: Sendable, Hashable {
    /// The copy-stream elements.
    public var envelopes: [[UInt8]]
    /// The residual encoder bytes to pass to the next call; `nil` when `isLast`.
    public var buffer: [UInt8]?
    /// The next index of each destination, in the request's order.
    public var nextDestinationIndices: [MessageBoxIndex]
}

/// One tombstone of ``ThinClient/tombstoneRange(writeCapability:start:maxCount:)``.
public struct TombstoneEnvelope: Sendable, Hashable {
    /// The encrypted tombstone write.
    public var message: EncryptedMessage
    /// The box it tombstones.
    public var boxIndex: MessageBoxIndex
}

/// The encrypted tombstones of a range of boxes, from ``ThinClient/tombstoneRange(writeCapability:start:maxCount:)``.
public struct TombstoneRangeResult: Sendable, Hashable {
    /// One envelope per box, in index order.
    public var envelopes: [TombstoneEnvelope]
    /// The index after the last tombstoned box.
    public var next: MessageBoxIndex
}

/// A PKI document returned by ``ThinClient/getPKIDocument(epoch:)``.
public struct PKIDocumentReply: Sendable, Hashable {
    /// The certificate-wrapped, signed document, as kpclientd sent it; `nil` if it has none.
    public var payload: [UInt8]?
    /// The epoch the request resolved to.
    public var epoch: UInt64
}

/// A directory authority, from ``ThinClient/getDirectoryAuthorities()``.
public struct DirectoryAuthority: Sendable, Hashable {
    /// `identifier`.
    public var identifier: String
    /// `pki_signature_scheme`.
    public var pkiSignatureScheme: String
    /// `wire_kem_scheme`.
    public var wireKEMScheme: String
    /// `addresses`.
    public var addresses: [String]
    /// `identity_public_key_pem`.
    public var identityPublicKeyPEM: String
    /// `link_public_key_pem`.
    public var linkPublicKeyPEM: String
    /// `identity_key_hash`: 32 bytes.
    public var identityKeyHash: [UInt8]
}

/// The SURB reply of ``ThinClient/sendMessage(destination:queueID:payload:timeout:)``.
public struct MessageReply: Sendable, Hashable {
    /// The SURB ID the message was sent with.
    public var surbID: [UInt8]
    /// The reply payload (services may pad it).
    public var payload: [UInt8]
    /// When the daemon sent the message (Unix seconds), if its `message_sent_event` arrived.
    public var sentAt: UInt64?
    /// The daemon's estimate of the round trip, if its `message_sent_event` arrived.
    public var replyETA: Duration?
}

/// A service advertised in the PKI document (`ServiceNodes[…].Kaetzchen[capability]`).
public struct ServiceDescriptor: Sendable, Hashable {
    /// The node's name.
    public var nodeName: String
    /// The node's identity key; `send_message` wants its BLAKE2b-256 hash as `destination_id_hash`.
    public var identityKey: [UInt8]
    /// The endpoint (the `recipient_queue_id` to send to).
    public var endpoint: String
}
