import CSodium

/// Ed25519 signatures (RFC 8032) with libsodium's key layout.
///
/// A secret key is 64 bytes: the 32-byte seed followed by the 32-byte public key.
public enum Ed25519 {
    /// Seed length in bytes.
    public static let seedLength = 32
    /// Public key length in bytes.
    public static let publicKeyLength = 32
    /// Secret key length in bytes (seed followed by public key).
    public static let secretKeyLength = 64
    /// Signature length in bytes.
    public static let signatureLength = 64

    /// Derives the key pair of an RFC 8032 seed (`crypto_sign_seed_keypair`).
    ///
    /// - Precondition: `seed` is 32 bytes.
    public static func keyPair(seed: [UInt8]) -> (publicKey: [UInt8], secretKey: [UInt8]) {
        precondition(seed.count == seedLength, "Ed25519 seed must be 32 bytes")
        Sodium.initialize()
        var publicKey = [UInt8](repeating: 0, count: publicKeyLength)
        var secretKey = [UInt8](repeating: 0, count: secretKeyLength)
        let status = seed.withUnsafeBufferPointer { seed in
            publicKey.withUnsafeMutableBufferPointer { publicKey in
                secretKey.withUnsafeMutableBufferPointer { secretKey in
                    crypto_sign_seed_keypair(publicKey.baseAddress!, secretKey.baseAddress!, seed.baseAddress!)
                }
            }
        }
        precondition(status == 0, "crypto_sign_seed_keypair failed")
        return (publicKey, secretKey)
    }

    /// Signs `message`; returns the 64-byte detached signature (`crypto_sign_detached`).
    ///
    /// - Precondition: `secretKey` is 64 bytes.
    public static func sign(_ message: [UInt8], secretKey: [UInt8]) -> [UInt8] {
        precondition(secretKey.count == secretKeyLength, "Ed25519 secret key must be 64 bytes")
        Sodium.initialize()
        return [UInt8](unsafeUninitializedCapacity: signatureLength) { signature, initialized in
            let status = message.withUnsafeBufferPointer { message in
                secretKey.withUnsafeBufferPointer { secretKey in
                    crypto_sign_detached(
                        signature.baseAddress!, nil, message.baseAddress, UInt64(message.count), secretKey.baseAddress!)
                }
            }
            precondition(status == 0, "crypto_sign_detached failed")
            initialized = signatureLength
        }
    }

    /// Checks a detached signature (`crypto_sign_verify_detached`).
    ///
    /// Returns `false`, never traps, for a signature or public key of the wrong length.
    public static func verify(signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        Sodium.initialize()
        return signature.withUnsafeBufferPointer { signature in
            message.withUnsafeBufferPointer { message in
                publicKey.withUnsafeBufferPointer { publicKey in
                    crypto_sign_verify_detached(
                        signature.baseAddress!, message.baseAddress, UInt64(message.count), publicKey.baseAddress!) == 0
                }
            }
        }
    }
}
