import CSodium

/// The simulator's only door to cryptographic primitives.
///
/// - Important: Until the `StreamCrypto` module lands (branch `cbor`), these call libsodium
///   directly through the `CSodium` system module that `StreamCrypto` wraps. When it lands, the
///   bodies become calls to `BLAKE2b.hash`, `Ed25519`, `SecretBox` and `SecureRandom`; the
///   simulator's code above this file does not change.
enum SimCrypto {
    private static let initialised: Bool = sodium_init() >= 0

    /// BLAKE2b with an output of `outputLength` bytes (16...64) and an optional key (≤ 64 bytes).
    static func blake2b(_ message: [UInt8], outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        precondition(initialised)
        precondition((16...64).contains(outputLength) && key.count <= 64)
        var out = [UInt8](repeating: 0, count: outputLength)
        let rc = message.withUnsafeBufferPointer { m in
            key.withUnsafeBufferPointer { k in
                crypto_generichash(&out, outputLength, m.baseAddress, UInt64(m.count), key.isEmpty ? nil : k.baseAddress, key.count)
            }
        }
        precondition(rc == 0, "crypto_generichash failed")
        return out
    }

    /// An Ed25519 key pair from a 32-byte seed: the 32-byte public key.
    static func ed25519PublicKey(seed: [UInt8]) -> [UInt8] {
        ed25519KeyPair(seed: seed).publicKey
    }

    /// An Ed25519 key pair from a 32-byte seed: public key (32) and libsodium secret key (seed ‖ public, 64).
    static func ed25519KeyPair(seed: [UInt8]) -> (publicKey: [UInt8], secretKey: [UInt8]) {
        precondition(initialised && seed.count == 32)
        var pk = [UInt8](repeating: 0, count: 32)
        var sk = [UInt8](repeating: 0, count: 64)
        let rc = crypto_sign_seed_keypair(&pk, &sk, seed)
        precondition(rc == 0, "crypto_sign_seed_keypair failed")
        return (pk, sk)
    }

    /// A detached Ed25519 signature (64 bytes) of `message` with the key derived from `seed`.
    static func ed25519Sign(_ message: [UInt8], seed: [UInt8]) -> [UInt8] {
        var (_, sk) = ed25519KeyPair(seed: seed)
        defer { wipe(&sk) }
        var sig = [UInt8](repeating: 0, count: 64)
        let rc = crypto_sign_detached(&sig, nil, message, UInt64(message.count), sk)
        precondition(rc == 0, "crypto_sign_detached failed")
        return sig
    }

    /// Whether `signature` is a valid Ed25519 signature of `message` under `publicKey`.
    static func ed25519Verify(_ signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        precondition(initialised)
        guard signature.count == 64, publicKey.count == 32 else { return false }
        return crypto_sign_verify_detached(signature, message, UInt64(message.count), publicKey) == 0
    }

    /// The XSalsa20-Poly1305 secret box overhead (MAC) in bytes.
    static let secretBoxOverhead = 16
    /// The secret box nonce length.
    static let secretBoxNonceLength = 24

    /// Seals `plaintext` under a 32-byte key and a 24-byte nonce (ciphertext = MAC ‖ data).
    static func secretBoxSeal(_ plaintext: [UInt8], nonce: [UInt8], key: [UInt8]) -> [UInt8] {
        precondition(initialised && nonce.count == 24 && key.count == 32)
        var out = [UInt8](repeating: 0, count: plaintext.count + secretBoxOverhead)
        let rc = crypto_secretbox_easy(&out, plaintext, UInt64(plaintext.count), nonce, key)
        precondition(rc == 0, "crypto_secretbox_easy failed")
        return out
    }

    /// Opens a secret box; `nil` if authentication fails.
    static func secretBoxOpen(_ ciphertext: [UInt8], nonce: [UInt8], key: [UInt8]) -> [UInt8]? {
        precondition(initialised && key.count == 32)
        guard nonce.count == 24, ciphertext.count >= secretBoxOverhead else { return nil }
        var out = [UInt8](repeating: 0, count: ciphertext.count - secretBoxOverhead)
        let rc = crypto_secretbox_open_easy(&out, ciphertext, UInt64(ciphertext.count), nonce, key)
        return rc == 0 ? out : nil
    }

    /// `count` bytes from the operating system's CSPRNG.
    static func randomBytes(_ count: Int) -> [UInt8] {
        precondition(initialised)
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { randombytes_buf(&out, count) }
        return out
    }

    /// Overwrites `bytes` with zeros in a way the optimiser keeps.
    static func wipe(_ bytes: inout [UInt8]) {
        let count = bytes.count
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { sodium_memzero(base, count) }
        }
    }
}
