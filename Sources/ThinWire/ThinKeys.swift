/// The text keys of the thin-client protocol: message types and their fields.
///
/// Message-type keys appear as the single non-null top-level key of a frame's map; field keys
/// appear inside that key's value. Names are exactly those of the Go daemon's CBOR tags.
public enum ThinKey {
    /// Request keys (client → daemon).
    public enum Request {
        /// `session_token`: announces the client's instance token (no query id, no `_reply` key).
        public static let sessionToken = "session_token"
        /// `thin_close`: closes the session and destroys its state at once.
        public static let thinClose = "thin_close"
        /// `send_message`: a legacy mixnet message (correlated by `surbid`).
        public static let sendMessage = "send_message"
        /// `get_pki_document`.
        public static let getPKIDocument = "get_pki_document"
        /// `get_directory_authorities`.
        public static let getDirectoryAuthorities = "get_directory_authorities"
        /// `new_keypair`.
        public static let newKeypair = "new_keypair"
        /// `next_message_box_index`.
        public static let nextMessageBoxIndex = "next_message_box_index"
        /// `get_message_box_index_counter`.
        public static let getMessageBoxIndexCounter = "get_message_box_index_counter"
        /// `encrypt_read`.
        public static let encryptRead = "encrypt_read"
        /// `encrypt_write`.
        public static let encryptWrite = "encrypt_write"
        /// `start_resending_encrypted_message` (mixnet path).
        public static let startResendingEncryptedMessage = "start_resending_encrypted_message"
        /// `cancel_resending_encrypted_message`.
        public static let cancelResendingEncryptedMessage = "cancel_resending_encrypted_message"
        /// `start_resending_copy_command` (mixnet path).
        public static let startResendingCopyCommand = "start_resending_copy_command"
        /// `cancel_resending_copy_command`.
        public static let cancelResendingCopyCommand = "cancel_resending_copy_command"
        /// `create_courier_envelopes_from_payload`.
        public static let createCourierEnvelopesFromPayload = "create_courier_envelopes_from_payload"
        /// `create_courier_envelopes_from_multi_payload`.
        public static let createCourierEnvelopesFromMultiPayload = "create_courier_envelopes_from_multi_payload"
        /// `create_courier_envelopes_from_tombstone_range`.
        public static let createCourierEnvelopesFromTombstoneRange = "create_courier_envelopes_from_tombstone_range"
        /// `voucher_mint`.
        public static let voucherMint = "voucher_mint"
        /// `voucher_induct`.
        public static let voucherInduct = "voucher_induct"
        /// `voucher_open`.
        public static let voucherOpen = "voucher_open"
        /// `voucher_derive_stream`.
        public static let voucherDeriveStream = "voucher_derive_stream"

        /// Every request key, in the order of the reference.
        public static let all: [String] = [
            sessionToken, thinClose, sendMessage, getPKIDocument, getDirectoryAuthorities, newKeypair,
            nextMessageBoxIndex, getMessageBoxIndexCounter, encryptRead, encryptWrite,
            startResendingEncryptedMessage, cancelResendingEncryptedMessage, startResendingCopyCommand,
            cancelResendingCopyCommand, createCourierEnvelopesFromPayload, createCourierEnvelopesFromMultiPayload,
            createCourierEnvelopesFromTombstoneRange, voucherMint, voucherInduct, voucherOpen, voucherDeriveStream,
        ]

        /// The requests the daemon serves on the mixnet path (queued, released by the scheduler).
        public static let mixnetPath: Set<String> = [
            sendMessage, startResendingEncryptedMessage, startResendingCopyCommand,
        ]
    }

    /// Reply keys (daemon → client), each `<request>_reply` and carrying the request's `query_id`.
    public enum Reply {
        /// The reply key of a query-correlated request: `<request>_reply`.
        public static func of(_ request: String) -> String { request + "_reply" }

        /// `get_pki_document_reply`.
        public static let getPKIDocument = of(Request.getPKIDocument)
        /// `get_directory_authorities_reply`.
        public static let getDirectoryAuthorities = of(Request.getDirectoryAuthorities)
        /// `new_keypair_reply`.
        public static let newKeypair = of(Request.newKeypair)
        /// `next_message_box_index_reply`.
        public static let nextMessageBoxIndex = of(Request.nextMessageBoxIndex)
        /// `get_message_box_index_counter_reply`.
        public static let getMessageBoxIndexCounter = of(Request.getMessageBoxIndexCounter)
        /// `encrypt_read_reply`.
        public static let encryptRead = of(Request.encryptRead)
        /// `encrypt_write_reply`.
        public static let encryptWrite = of(Request.encryptWrite)
        /// `start_resending_encrypted_message_reply`.
        public static let startResendingEncryptedMessage = of(Request.startResendingEncryptedMessage)
        /// `cancel_resending_encrypted_message_reply`.
        public static let cancelResendingEncryptedMessage = of(Request.cancelResendingEncryptedMessage)
        /// `start_resending_copy_command_reply`.
        public static let startResendingCopyCommand = of(Request.startResendingCopyCommand)
        /// `cancel_resending_copy_command_reply`.
        public static let cancelResendingCopyCommand = of(Request.cancelResendingCopyCommand)
        /// `create_courier_envelopes_from_payload_reply`.
        public static let createCourierEnvelopesFromPayload = of(Request.createCourierEnvelopesFromPayload)
        /// `create_courier_envelopes_from_multi_payload_reply`.
        public static let createCourierEnvelopesFromMultiPayload = of(Request.createCourierEnvelopesFromMultiPayload)
        /// `create_courier_envelopes_from_tombstone_range_reply`.
        public static let createCourierEnvelopesFromTombstoneRange = of(Request.createCourierEnvelopesFromTombstoneRange)
        /// `voucher_mint_reply`.
        public static let voucherMint = of(Request.voucherMint)
        /// `voucher_induct_reply`.
        public static let voucherInduct = of(Request.voucherInduct)
        /// `voucher_open_reply`.
        public static let voucherOpen = of(Request.voucherOpen)
        /// `voucher_derive_stream_reply`.
        public static let voucherDeriveStream = of(Request.voucherDeriveStream)
    }

    /// Event keys (daemon → client, not query-correlated).
    public enum Event {
        /// `connection_status_event`: the first frame, and again on every mixnet link change.
        public static let connectionStatus = "connection_status_event"
        /// `new_pki_document_event`: the second frame, and again on every new consensus.
        public static let newPKIDocument = "new_pki_document_event"
        /// `session_token_reply`: the answer to `session_token` (no query id).
        public static let sessionTokenReply = "session_token_reply"
        /// `message_sent_event`: a `send_message` with a SURB left the daemon.
        public static let messageSent = "message_sent_event"
        /// `message_reply_event`: the SURB reply of a `send_message`.
        public static let messageReply = "message_reply_event"
        /// `message_id_garbage_collected`: defined but not emitted by current daemons.
        public static let messageIDGarbageCollected = "message_id_garbage_collected"
        /// `shutdown_event`: sent just before the daemon closes the connection.
        public static let shutdown = "shutdown_event"

        /// Every event key.
        public static let all: [String] = [
            connectionStatus, newPKIDocument, sessionTokenReply, messageSent, messageReply,
            messageIDGarbageCollected, shutdown,
        ]
    }

    /// Field keys used inside messages.
    public enum Field {
        /// `query_id`: 16 bytes correlating a request and its reply.
        public static let queryID = "query_id"
        /// `error_code`: uint8, 0 for success.
        public static let errorCode = "error_code"
        // connection_status_event
        /// `is_connected`.
        public static let isConnected = "is_connected"
        /// `err`.
        public static let err = "err"
        /// `instance_token`.
        public static let instanceToken = "instance_token"
        /// `sphinx_geometry`.
        public static let sphinxGeometry = "sphinx_geometry"
        /// `pigeonhole_geometry`.
        public static let pigeonholeGeometry = "pigeonhole_geometry"
        // session
        /// `client_instance_token`.
        public static let clientInstanceToken = "client_instance_token"
        /// `app_id`.
        public static let appID = "app_id"
        /// `resumed`.
        public static let resumed = "resumed"
        // PKI
        /// `payload`.
        public static let payload = "payload"
        /// `epoch`.
        public static let epoch = "epoch"
        /// `authorities`.
        public static let authorities = "authorities"
        // legacy messaging
        /// `id`.
        public static let id = "id"
        /// `with_surb`.
        public static let withSURB = "with_surb"
        /// `surbid`.
        public static let surbID = "surbid"
        /// `destination_id_hash`.
        public static let destinationIDHash = "destination_id_hash"
        /// `recipient_queue_id`.
        public static let recipientQueueID = "recipient_queue_id"
        /// `message_id`.
        public static let messageID = "message_id"
        /// `sent_at`.
        public static let sentAt = "sent_at"
        /// `reply_eta`.
        public static let replyETA = "reply_eta"
        /// `reply_index`.
        public static let replyIndex = "reply_index"
        // keys and indexes
        /// `seed`.
        public static let seed = "seed"
        /// `write_cap`.
        public static let writeCap = "write_cap"
        /// `read_cap`.
        public static let readCap = "read_cap"
        /// `first_message_index`.
        public static let firstMessageIndex = "first_message_index"
        /// `message_box_index`.
        public static let messageBoxIndex = "message_box_index"
        /// `next_message_box_index`.
        public static let nextMessageBoxIndex = "next_message_box_index"
        /// `counter`.
        public static let counter = "counter"
        // encrypt
        /// `plaintext`.
        public static let plaintext = "plaintext"
        /// `message_ciphertext`.
        public static let messageCiphertext = "message_ciphertext"
        /// `envelope_descriptor`.
        public static let envelopeDescriptor = "envelope_descriptor"
        /// `envelope_hash`.
        public static let envelopeHash = "envelope_hash"
        // ARQ
        /// `no_retry_on_box_id_not_found`.
        public static let noRetryOnBoxIDNotFound = "no_retry_on_box_id_not_found"
        /// `no_idempotent_box_already_exists`.
        public static let noIdempotentBoxAlreadyExists = "no_idempotent_box_already_exists"
        /// `courier_identity_hash`.
        public static let courierIdentityHash = "courier_identity_hash"
        /// `courier_queue_id`.
        public static let courierQueueID = "courier_queue_id"
        // copy
        /// `write_cap_hash`.
        public static let writeCapHash = "write_cap_hash"
        /// `replica_error_code`.
        public static let replicaErrorCode = "replica_error_code"
        /// `failed_envelope_index`.
        public static let failedEnvelopeIndex = "failed_envelope_index"
        /// `dest_write_cap`.
        public static let destWriteCap = "dest_write_cap"
        /// `dest_start_index`.
        public static let destStartIndex = "dest_start_index"
        /// `is_start`.
        public static let isStart = "is_start"
        /// `is_last`.
        public static let isLast = "is_last"
        /// `envelopes`.
        public static let envelopes = "envelopes"
        /// `next_dest_index`.
        public static let nextDestIndex = "next_dest_index"
        /// `destinations`.
        public static let destinations = "destinations"
        /// `start_index` (inside a `destinations` element).
        public static let startIndex = "start_index"
        /// `buffer`.
        public static let buffer = "buffer"
        /// `next_dest_indices`.
        public static let nextDestIndices = "next_dest_indices"
        /// `max_count`.
        public static let maxCount = "max_count"
    }
}

/// Exact byte lengths of the protocol's fixed-size fields (reference §5 and §8).
public enum ThinSizes {
    /// `query_id`: 16.
    public static let queryID = 16
    /// `instance_token` and `client_instance_token`: 16.
    public static let instanceToken = 16
    /// `app_id`: 16.
    public static let appID = 16
    /// `surbid`: 16.
    public static let surbID = 16
    /// `id` / `message_id`: 16.
    public static let messageID = 16
    /// Hashes (`envelope_hash`, `destination_id_hash`, `write_cap_hash`, ...): 32.
    public static let hash = 32
    /// `new_keypair` seed: 32.
    public static let seed = 32
    /// A `MessageBoxIndex`: Idx64 (8, LE) ‖ K (32) ‖ E (32) ‖ H (32) = 104.
    public static let messageBoxIndex = 104
    /// A `WriteCap`: Ed25519 private key (seed 32 ‖ public 32) ‖ MessageBoxIndex = 168.
    public static let writeCap = 168
    /// A `ReadCap`: root public key (32) ‖ MessageBoxIndex = 136.
    public static let readCap = 136
    /// An Ed25519 public key or box ID: 32.
    public static let publicKey = 32
    /// An Ed25519 signature: 64.
    public static let signature = 64
}
