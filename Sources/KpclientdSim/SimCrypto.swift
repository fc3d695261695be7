import StreamCrypto

/// The simulator's only door to cryptographic primitives, all from `StreamCrypto`.
enum SimCrypto {
    /// BLAKE2b with an output of `outputLength` bytes (16...64) and an optional key (≤ 64 bytes).
    static func blake2b(_ message: [UInt8], outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        BLAKE2b.hash(message, outputLength: outputLength, key: key)
    }

    /// The Ed25519 public key derived from a 32-byte seed.
    static func ed25519PublicKey(seed: [UInt8]) -> [UInt8] {
        var (publicKey, secretKey) = Ed25519.keyPair(seed: seed)
        secureZero(&secretKey)
        return publicKey
    }

    /// A detached Ed25519 signature (64 bytes) of `message` with the key of `seed`, whose public
    /// key is `publicKey`.
    ///
    /// The secret key is `seed ‖ publicKey` (libsodium's form), so no key derivation is spent
    /// per signature. A `publicKey` that is not `seed`'s gives a signature that does not verify
    /// under it, as a signature by the derived key would not.
    static func ed25519Sign(_ message: [UInt8], seed: [UInt8], publicKey: [UInt8]) -> [UInt8] {
        precondition(seed.count == Ed25519.seedLength && publicKey.count == Ed25519.publicKeyLength)
        var secretKey = seed + publicKey
        defer { secureZero(&secretKey) }
        return Ed25519.sign(message, secretKey: secretKey)
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under `publicKey`.
    static func ed25519Verify(_ signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        Ed25519.verify(signature: signature, message: message, publicKey: publicKey)
    }

    /// The secret box overhead (MAC) in bytes.
    static let secretBoxOverhead = SecretBox.macLength
    /// The secret box nonce length.
    static let secretBoxNonceLength = SecretBox.nonceLength

    /// Seals `plaintext` under a 32-byte key and a 24-byte nonce.
    static func secretBoxSeal(_ plaintext: [UInt8], nonce: [UInt8], key: [UInt8]) -> [UInt8] {
        SecretBox.seal(plaintext, key: key, nonce: nonce)
    }

    /// Opens a secret box; `nil` if authentication fails.
    static func secretBoxOpen(_ ciphertext: [UInt8], nonce: [UInt8], key: [UInt8]) -> [UInt8]? {
        guard nonce.count == secretBoxNonceLength, ciphertext.count >= secretBoxOverhead else { return nil }
        return SecretBox.open(ciphertext, key: key, nonce: nonce)
    }

    /// `count` bytes from the operating system's CSPRNG.
    static func randomBytes(_ count: Int) -> [UInt8] {
        SecureRandom.bytes(count)
    }

    /// Overwrites `bytes` with zeros in a way the optimiser keeps.
    static func wipe(_ bytes: inout [UInt8]) {
        secureZero(&bytes)
    }
}
