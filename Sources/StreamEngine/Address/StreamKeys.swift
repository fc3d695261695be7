import StreamCrypto

/// Which end of a stream this is.
public enum StreamRole: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// The end that created the address (`listen`); in multicast, the single writer.
    case listener = 1
    /// The end that joined with the address (`dial`); in multicast, a reader.
    case dialer = 2

    public var description: String { self == .listener ? "listener" : "dialer" }
}

/// How a stream delivers data.
public enum StreamMode: UInt8, Sendable, Hashable, CustomStringConvertible {
    /// Two peers exchange data both ways with acknowledgements (the default).
    case endToEnd = 1
    /// One writer, many readers; the writer never waits for acknowledgements.
    case multicast = 2

    public var description: String { self == .endToEnd ? "end-to-end" : "multicast" }
}

/// The keys for sending one direction of a stream.
public struct OutboundKeys: Sendable, Hashable {
    /// The base from which the direction's frame key is derived.
    public var frameKeyBase: [UInt8]
    /// The seed of the box channel this direction writes (for kpclientd's `new_keypair`).
    public var boxSeed: [UInt8]
    /// The Ed25519 seed that signs frames; multicast only.
    public var signingSeed: [UInt8]?
}

/// The keys for receiving one direction of a stream.
public struct InboundKeys: Sendable, Hashable {
    /// The base from which the direction's frame key is derived.
    public var frameKeyBase: [UInt8]
    /// The credential that opens the box channel this direction is read from.
    public var channel: BoxChannelCredential
    /// The Ed25519 public key that must have signed every frame; multicast only.
    public var verifyKey: [UInt8]?
}

/// The key schedule: from a 32-byte stream secret to per-direction keys (HKDF-SHA256), from a
/// frame key base to the direction's secretbox key (one BLAKE2b `crypto_kdf` call, once per
/// sealer), and from a frame index to the frame's nonce. See `docs/PROTOCOL.md` §2.
public enum StreamKeySchedule {
    static let extractSalt = Array("streamd/v1 stream secret".utf8)

    /// The per-direction material derived from a stream secret.
    public struct Direction: Sendable, Hashable {
        /// Frame key base (32 bytes).
        public var frameKeyBase: [UInt8]
        /// Box channel seed (32 bytes).
        public var boxSeed: [UInt8]
        /// Ed25519 signing seed (32 bytes), used in multicast.
        public var signingSeed: [UInt8]
    }

    /// Derives the material of the listener→dialer or dialer→listener direction.
    public static func direction(secret: [UInt8], from sender: StreamRole) -> Direction {
        var prk = HKDF.extract(salt: extractSalt, inputKeyMaterial: secret)
        defer { secureZero(&prk) }
        let label = sender == .listener ? "listener-to-dialer" : "dialer-to-listener"
        func expand(_ purpose: String) -> [UInt8] {
            HKDF.expand(pseudoRandomKey: prk, info: Array("streamd/v1 \(label) \(purpose)".utf8), outputLength: 32)
        }
        return Direction(frameKeyBase: expand("frame key"), boxSeed: expand("box seed"), signingSeed: expand("signing seed"))
    }

    /// The `crypto_kdf` context of the frame key: 8 ASCII bytes, `"sd1frkey"`.
    static let frameKeyContext = Array("sd1frkey".utf8)
    /// The first 8 bytes of every frame nonce, ASCII `"sd1nonce"` as a big-endian word.
    static let nonceTag: UInt64 = 0x7364_316e_6f6e_6365

    /// Derives a direction's secretbox key (32 bytes) from its frame key base: one BLAKE2b call,
    /// `crypto_kdf_derive_from_key(32, 0, "sd1frkey", frameKeyBase)`, into memory that is
    /// zeroed when the key is dropped.
    public static func frameKey(frameKeyBase: [UInt8]) -> SecretBytes {
        SecretBytes(count: SecretBox.keyLength) { key in
            SubkeyDerivation.withSubkey(
                length: SecretBox.keyLength, id: 0, context: frameKeyContext, masterKey: frameKeyBase
            ) { key.copyMemory(from: $0) }
        }
    }

    /// Calls `body` with frame `index`'s 24-byte nonce, `"sd1nonce" ‖ BE64(index) ‖ 0⁸`, in a
    /// temporary buffer (nothing on the heap). The nonce is not secret.
    @inline(__always)
    public static func withFrameNonce<R>(index: UInt64, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(byteCount: SecretBox.nonceLength, alignment: 8) { nonce in
            nonce.storeBytes(of: nonceTag.bigEndian, toByteOffset: 0, as: UInt64.self)
            nonce.storeBytes(of: index.bigEndian, toByteOffset: 8, as: UInt64.self)
            nonce.storeBytes(of: 0, toByteOffset: 16, as: UInt64.self)
            return try body(UnsafeRawBufferPointer(nonce))
        }
    }

    /// Frame `index`'s secretbox key and nonce as arrays: ``frameKey(frameKeyBase:)`` and
    /// ``withFrameNonce(index:_:)`` (for tests and tools; the sealer keeps its key in
    /// ``SecretBytes``).
    public static func frameKeyAndNonce(frameKeyBase: [UInt8], index: UInt64) -> (key: [UInt8], nonce: [UInt8]) {
        (frameKey(frameKeyBase: frameKeyBase).withUnsafeBytes { Array($0) }, withFrameNonce(index: index) { Array($0) })
    }
}
