import CSodium

/// NaCl `secretbox`: XSalsa20-Poly1305 authenticated encryption with a 32-byte key and a
/// 24-byte nonce.
///
/// The box layout is that of `crypto_secretbox_easy` and Go's `secretbox.Seal`: the 16-byte
/// Poly1305 tag followed by the ciphertext, with nothing prepended. A key and nonce pair must
/// never seal two different plaintexts.
public enum SecretBox {
    /// Key length in bytes.
    public static let keyLength = 32
    /// Nonce length in bytes.
    public static let nonceLength = 24
    /// Authentication tag length in bytes: a box is this much longer than its plaintext.
    public static let macLength = 16

    /// Encrypts and authenticates `plaintext`; returns `macLength + plaintext.count` bytes.
    ///
    /// The box is written straight into the returned array, with no intermediate copy.
    ///
    /// - Precondition: `key` is 32 bytes and `nonce` 24 bytes.
    public static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { key in nonce.withUnsafeBytes { nonce in seal(plaintext, key: key, nonce: nonce) } }
    }

    /// Encrypts and authenticates `plaintext` with a key and nonce held in raw memory (for
    /// keys derived into a temporary buffer that is zeroed after use).
    ///
    /// - Precondition: `key` is 32 bytes and `nonce` 24 bytes.
    public static func seal(_ plaintext: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer) -> [UInt8] {
        precondition(key.count == keyLength, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceLength, "secretbox nonce must be 24 bytes")
        Sodium.initialize()
        let boxLength = macLength + plaintext.count
        return [UInt8](unsafeUninitializedCapacity: boxLength) { box, initialized in
            let status = plaintext.withUnsafeBufferPointer { message in
                crypto_secretbox_easy(
                    box.baseAddress!, message.baseAddress, UInt64(message.count),
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            precondition(status == 0, "crypto_secretbox_easy failed")
            initialized = boxLength
        }
    }

    /// Encrypts and authenticates a plaintext of `plaintextCount` bytes that `writePlaintext`
    /// writes straight into the box's memory (behind the tag), sealing it in place: no
    /// plaintext array is allocated or copied. `writePlaintext` must initialize every byte.
    ///
    /// - Precondition: `key` is 32 bytes, `nonce` 24 bytes and `plaintextCount` not negative.
    public static func seal(
        plaintextCount: Int, key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        writingPlaintext writePlaintext: (UnsafeMutableRawBufferPointer) -> Void
    ) -> [UInt8] {
        precondition(key.count == keyLength, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceLength, "secretbox nonce must be 24 bytes")
        precondition(plaintextCount >= 0, "a plaintext has a length")
        Sodium.initialize()
        let boxLength = macLength + plaintextCount
        return [UInt8](unsafeUninitializedCapacity: boxLength) { box, initialized in
            let base = box.baseAddress!
            writePlaintext(UnsafeMutableRawBufferPointer(start: base + macLength, count: plaintextCount))
            // libsodium seals in place when the message is where the ciphertext goes (c + 16 == m).
            let status = crypto_secretbox_easy(
                base, base + macLength, UInt64(plaintextCount),
                nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
            precondition(status == 0, "crypto_secretbox_easy failed")
            initialized = boxLength
        }
    }

    /// Verifies and decrypts `box`.
    ///
    /// - Returns: the plaintext, or `nil` if the box is shorter than the tag or fails
    ///   authentication (wrong key or nonce, or altered bytes). Never traps on `box`'s length.
    /// - Precondition: `key` is 32 bytes and `nonce` 24 bytes.
    public static func open(_ box: [UInt8], key: [UInt8], nonce: [UInt8]) -> [UInt8]? {
        key.withUnsafeBytes { key in nonce.withUnsafeBytes { nonce in open(box, key: key, nonce: nonce) } }
    }

    /// Verifies and decrypts `box` into `plaintext`, memory the caller reuses from box to box
    /// (no array per box), with a key and nonce held in raw memory.
    ///
    /// - Returns: whether `box` authenticated; if not, `plaintext` holds nothing of it. False
    ///   also if `box` is shorter than the tag or `plaintext` is not exactly
    ///   `box.count - macLength` bytes. Never traps on `box`'s length.
    /// - Precondition: `key` is 32 bytes and `nonce` 24 bytes.
    public static func open(
        _ box: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, into plaintext: UnsafeMutableRawBufferPointer
    ) -> Bool {
        precondition(key.count == keyLength, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceLength, "secretbox nonce must be 24 bytes")
        guard box.count >= macLength, plaintext.count == box.count - macLength, let output = plaintext.baseAddress else { return false }
        Sodium.initialize()
        let status = box.withUnsafeBufferPointer { box in
            crypto_secretbox_open_easy(
                output.assumingMemoryBound(to: UInt8.self), box.baseAddress!, UInt64(box.count),
                nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return status == 0
    }

    /// Verifies and decrypts `box` with a key and nonce held in raw memory.
    ///
    /// - Returns: the plaintext, or `nil` if the box is shorter than the tag or fails
    ///   authentication. Never traps on `box`'s length.
    /// - Precondition: `key` is 32 bytes and `nonce` 24 bytes.
    public static func open(_ box: [UInt8], key: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer) -> [UInt8]? {
        precondition(key.count == keyLength, "secretbox key must be 32 bytes")
        precondition(nonce.count == nonceLength, "secretbox nonce must be 24 bytes")
        guard box.count >= macLength else { return nil }
        Sodium.initialize()
        let plaintextLength = box.count - macLength
        var authentic = false
        // One spare byte keeps the output pointer valid when the plaintext is empty.
        let plaintext = [UInt8](unsafeUninitializedCapacity: max(plaintextLength, 1)) { output, initialized in
            let status = box.withUnsafeBufferPointer { box in
                crypto_secretbox_open_easy(
                    output.baseAddress, box.baseAddress!, UInt64(box.count),
                    nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), key.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
            authentic = status == 0
            initialized = authentic ? plaintextLength : 0
        }
        return authentic ? plaintext : nil
    }
}
