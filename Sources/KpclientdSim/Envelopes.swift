import CBOR
import ThinWire

/// An opened courier envelope: what `encrypt_read` / `encrypt_write` sealed.
struct OpenedEnvelope: Sendable, Hashable {
    enum Kind: UInt8, Sendable { case read = 1, write = 2 }

    var kind: Kind
    /// Whether the write is a tombstone (a signed empty payload).
    var isTombstone: Bool
    /// The stream's root public key.
    var publicKey: [UInt8]
    /// The 104-byte MessageBoxIndex addressed.
    var index: [UInt8]
    /// The unpadded plaintext (writes only; empty for reads and tombstones).
    var plaintext: [UInt8]
    /// The Ed25519 signature over ``signedMessage`` (writes only).
    var signature: [UInt8]

    /// The box this envelope addresses.
    var boxID: [UInt8] { Capabilities.boxID(publicKey: publicKey, index: index) }

    /// What a write's signature covers: a domain label, the box ID, the tombstone flag and the plaintext.
    static func signedMessage(boxID: [UInt8], isTombstone: Bool, plaintext: [UInt8]) -> [UInt8] {
        Array("kpclientd-sim write".utf8) + boxID + [isTombstone ? 1 : 0] + Bytes.be32(UInt32(plaintext.count)) + plaintext
    }

    /// Whether the signature verifies under the envelope's public key.
    var hasValidSignature: Bool {
        SimCrypto.ed25519Verify(
            signature, message: Self.signedMessage(boxID: boxID, isTombstone: isTombstone, plaintext: plaintext),
            publicKey: publicKey
        )
    }
}

/// Seals and opens the simulator's courier envelopes.
///
/// An envelope is `nonce (24) ‖ XSalsa20-Poly1305(key, inner)`, where `inner` is
/// `kind (1) ‖ flags (1, bit 0 = tombstone) ‖ public key (32) ‖ index (104) ‖ BE32 length ‖
/// plaintext zero-padded to M ‖ signature (64) ‖ zero padding`, padded so that every envelope,
/// read, write or tombstone, is exactly `CourierQueryWriteLength` (= UserForwardPayloadLength)
/// bytes. The key is the simulator's "replica key": random, derived from `--seed`, or kept in the
/// `--state` file, so envelopes stay openable across reconnects and restarts. The random nonce
/// makes `envelope_hash` = BLAKE2b-256(envelope) unique per call.
struct EnvelopeSealer: Sendable {
    let key: [UInt8]
    let maxPlaintextLength: Int
    let envelopeLength: Int

    private var innerLength: Int { envelopeLength - SimCrypto.secretBoxNonceLength - SimCrypto.secretBoxOverhead }
    private var minimumInnerLength: Int { 2 + 32 + ThinSizes.messageBoxIndex + 4 + maxPlaintextLength + 64 }

    init(key: [UInt8], geometry: PigeonholeGeometry) {
        self.key = key
        self.maxPlaintextLength = geometry.maxPlaintextPayloadLength
        self.envelopeLength = geometry.courierQueryWriteLength
        precondition(innerLength >= minimumInnerLength, "envelope length too small for the geometry")
    }

    /// Seals a read of box (`publicKey`, `index`).
    func sealRead(publicKey: [UInt8], index: [UInt8], nonce: [UInt8]) -> [UInt8] {
        seal(kind: .read, tombstone: false, publicKey: publicKey, index: index, plaintext: [], signature: [UInt8](repeating: 0, count: 64), nonce: nonce)
    }

    /// Seals a write (or, for an empty plaintext, a tombstone) signed with the write cap's key.
    ///
    /// The signature uses the Ed25519 key derived from `writeCap[0..<32]` and names the public key
    /// `writeCap[32..<64]`; a forged cap therefore yields a signature the store rejects.
    func sealWrite(writeCap: [UInt8], index: [UInt8], plaintext: [UInt8], nonce: [UInt8]) -> [UInt8] {
        let write = Self.signedWrite(writeCap: writeCap, index: index, plaintext: plaintext)
        return seal(
            kind: .write, tombstone: write.isTombstone, publicKey: write.publicKey, index: index, plaintext: plaintext,
            signature: write.signature, nonce: nonce
        )
    }

    /// The opened form of a write (a tombstone when `plaintext` is empty) signed with `writeCap`'s key.
    static func signedWrite(writeCap: [UInt8], index: [UInt8], plaintext: [UInt8]) -> OpenedEnvelope {
        var seed = Array(writeCap[CapabilityLayout.writeCapSeed])
        defer { SimCrypto.wipe(&seed) }
        let publicKey = Array(writeCap[CapabilityLayout.writeCapPublicKey])
        let tombstone = plaintext.isEmpty
        let boxID = Capabilities.boxID(publicKey: publicKey, index: index)
        let signature = SimCrypto.ed25519Sign(OpenedEnvelope.signedMessage(boxID: boxID, isTombstone: tombstone, plaintext: plaintext), seed: seed, publicKey: publicKey)
        return OpenedEnvelope(kind: .write, isTombstone: tombstone, publicKey: publicKey, index: index, plaintext: plaintext, signature: signature)
    }

    private func seal(
        kind: OpenedEnvelope.Kind, tombstone: Bool, publicKey: [UInt8], index: [UInt8], plaintext: [UInt8],
        signature: [UInt8], nonce: [UInt8]
    ) -> [UInt8] {
        precondition(plaintext.count <= maxPlaintextLength)
        var inner: [UInt8] = [kind.rawValue, tombstone ? 1 : 0]
        inner.reserveCapacity(innerLength)
        inner += publicKey
        inner += index
        inner += Bytes.be32(UInt32(plaintext.count))
        inner += plaintext
        inner += [UInt8](repeating: 0, count: maxPlaintextLength - plaintext.count)
        inner += signature
        inner += [UInt8](repeating: 0, count: innerLength - inner.count)
        return nonce + SimCrypto.secretBoxSeal(inner, nonce: nonce, key: key)
    }

    /// Opens an envelope; `nil` if it is not one of ours (the "MKEM decryption failed" case).
    func open(_ envelope: [UInt8]) -> OpenedEnvelope? {
        guard envelope.count == envelopeLength else { return nil }
        let nonce = Array(envelope[0..<SimCrypto.secretBoxNonceLength])
        guard let inner = SimCrypto.secretBoxOpen(Array(envelope[SimCrypto.secretBoxNonceLength...]), nonce: nonce, key: key),
            inner.count >= minimumInnerLength, let kind = OpenedEnvelope.Kind(rawValue: inner[0])
        else { return nil }
        let publicKey = Array(inner[2..<34])
        let index = Array(inner[34..<138])
        let length = Int(Bytes.readBE32(inner, at: 138))
        guard length <= maxPlaintextLength else { return nil }
        let plaintext = Array(inner[142..<(142 + length)])
        let sigStart = 142 + maxPlaintextLength
        let signature = Array(inner[sigStart..<(sigStart + 64)])
        return OpenedEnvelope(kind: kind, isTombstone: inner[1] & 1 != 0, publicKey: publicKey, index: index, plaintext: plaintext, signature: signature)
    }

    /// An opaque envelope descriptor: CBOR `{Epoch, ReplicaNums, EnvelopeKey}` as the real one is
    /// CBOR holding a reply key, the epoch and the replica numbers. The simulator never reads it.
    static func descriptor(epoch: UInt64, replyKey: [UInt8]) -> [UInt8] {
        WireCBOR.encode(.textMap([
            ("Epoch", .unsigned(epoch)),
            ("ReplicaNums", .array([.unsigned(0), .unsigned(1)])),
            ("EnvelopeKey", .bytes(replyKey)),
        ]))
    }
}

/// The copy-stream format (reference §3.4, `pigeonhole/copy_stream.go`).
///
/// The stream is a concatenation of records, `BE32 length ‖ envelope`, cut into elements of
/// `flags (1; bit 0 Start, bit 1 Final) ‖ BE32 length ‖ data`, with at most M − 5 bytes of data,
/// so that one element fills at most one box.
enum CopyStream {
    static let startFlag: UInt8 = 1
    static let finalFlag: UInt8 = 2

    /// The residual encoder state passed between calls as `buffer`: `start-pending (1) ‖ bytes`.
    struct Residual: Sendable {
        var startPending: Bool
        var bytes: [UInt8]

        init(startPending: Bool, bytes: [UInt8]) {
            self.startPending = startPending
            self.bytes = bytes
        }

        /// Parses a client-supplied buffer; `nil` if it is not one the simulator produced.
        init?(buffer: [UInt8]?, isStart: Bool, limit: Int) {
            guard let buffer, !buffer.isEmpty else {
                self.init(startPending: isStart, bytes: [])
                return
            }
            guard buffer[0] <= 1, buffer.count - 1 <= limit else { return nil }
            self.init(startPending: isStart || buffer[0] == 1, bytes: Array(buffer.dropFirst()))
        }

        var encoded: [UInt8] { [startPending ? 1 : 0] + bytes }
    }

    /// Appends one record (`BE32 length ‖ envelope`) to `stream`.
    static func appendRecord(_ envelope: [UInt8], to stream: inout [UInt8]) {
        stream += Bytes.be32(UInt32(envelope.count))
        stream += envelope
    }

    /// Cuts `residual` into elements of at most `maxPlaintextLength` bytes.
    ///
    /// With `flush`, everything is emitted and the last element carries Final if `final`; without
    /// it, elements are emitted only while more than one element's worth of data is buffered, and
    /// the rest stays in `residual`.
    static func cut(_ residual: inout Residual, maxPlaintextLength m: Int, flush: Bool, final: Bool) -> [[UInt8]] {
        let chunk = m - 5
        var elements: [[UInt8]] = []
        var offset = 0
        let data = residual.bytes
        func emit(_ count: Int, last: Bool) {
            var flags: UInt8 = 0
            if residual.startPending { flags |= startFlag; residual.startPending = false }
            if last && final { flags |= finalFlag }
            elements.append([flags] + Bytes.be32(UInt32(count)) + Array(data[offset..<(offset + count)]))
            offset += count
        }
        while data.count - offset > chunk { emit(chunk, last: false) }
        if flush {
            if data.count > offset || (final && elements.isEmpty) {
                emit(data.count - offset, last: true)
            } else if final, let lastIndex = elements.indices.last {
                elements[lastIndex][0] |= finalFlag
            }
        }
        residual.bytes = Array(data[offset...])
        return elements
    }

    /// A parsed element.
    struct Element: Sendable {
        var flags: UInt8
        var data: [UInt8]
    }

    /// Parses one element (a box's plaintext); `nil` if malformed.
    static func parseElement(_ bytes: [UInt8]) -> Element? {
        guard bytes.count >= 5 else { return nil }
        let length = Int(Bytes.readBE32(bytes, at: 1))
        guard length == bytes.count - 5 else { return nil }
        return Element(flags: bytes[0], data: Array(bytes[5...]))
    }

    /// Splits concatenated element data into envelopes; `nil` if the records are malformed.
    static func parseRecords(_ stream: [UInt8], maxRecords: Int) -> [[UInt8]]? {
        var records: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            guard stream.count - offset >= 4, records.count < maxRecords else { return nil }
            let length = Int(Bytes.readBE32(stream, at: offset))
            offset += 4
            guard length <= stream.count - offset else { return nil }
            records.append(Array(stream[offset..<(offset + length)]))
            offset += length
        }
        return records
    }
}
