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
    /// The base from which each frame's key and nonce are derived.
    public var frameKeyBase: [UInt8]
    /// The seed of the box channel this direction writes (for kpclientd's `new_keypair`).
    public var boxSeed: [UInt8]
    /// The Ed25519 seed that signs frames; multicast only.
    public var signingSeed: [UInt8]?
}

/// The keys for receiving one direction of a stream.
public struct InboundKeys: Sendable, Hashable {
    /// The base from which each frame's key and nonce are derived.
    public var frameKeyBase: [UInt8]
    /// The credential that opens the box channel this direction is read from.
    public var channel: BoxChannelCredential
    /// The Ed25519 public key that must have signed every frame; multicast only.
    public var verifyKey: [UInt8]?
}

/// The key schedule: from a 32-byte stream secret to per-direction keys (HKDF-SHA256), and from
/// a frame key base to each frame's key and nonce (one BLAKE2b `crypto_kdf` call). See
/// `docs/PROTOCOL.md` §2.
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

    /// The `crypto_kdf` context of frame keys: 8 ASCII bytes, `"sd1frame"`.
    static let frameContext = Array("sd1frame".utf8)
    /// The bytes derived per frame: the secretbox key followed by the nonce.
    static let frameKeyAndNonceLength = SecretBox.keyLength + SecretBox.nonceLength

    /// Derives frame `index`'s secretbox key (32 bytes) and nonce (24 bytes): one BLAKE2b call,
    /// `crypto_kdf_derive_from_key(56, index, "sd1frame", frameKeyBase)`, split 32 + 24.
    ///
    /// The sealer uses ``withFrameKeyAndNonce(frameKeyBase:index:_:)``, which keeps them off the heap.
    public static func frameKeyAndNonce(frameKeyBase: [UInt8], index: UInt64) -> (key: [UInt8], nonce: [UInt8]) {
        withFrameKeyAndNonce(frameKeyBase: frameKeyBase, index: index) { (Array($0), Array($1)) }
    }

    /// Derives frame `index`'s key and nonce into a temporary buffer, calls `body` with them,
    /// and zeroes the buffer before returning.
    public static func withFrameKeyAndNonce<R>(
        frameKeyBase: [UInt8], index: UInt64,
        _ body: (_ key: UnsafeRawBufferPointer, _ nonce: UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        try SubkeyDerivation.withSubkey(
            length: frameKeyAndNonceLength, id: index, context: frameContext, masterKey: frameKeyBase
        ) { okm in
            try body(UnsafeRawBufferPointer(rebasing: okm[..<SecretBox.keyLength]),
                     UnsafeRawBufferPointer(rebasing: okm[SecretBox.keyLength...]))
        }
    }
}
