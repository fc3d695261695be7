import CSodium

/// SHA-256 (`crypto_hash_sha256`).
public enum SHA256 {
    /// Digest length in bytes.
    public static let digestLength = 32

    /// Returns the 32-byte SHA-256 digest of `data`.
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        Sodium.initialize()
        return [UInt8](unsafeUninitializedCapacity: digestLength) { digest, initialized in
            data.withUnsafeBufferPointer { data in
                _ = crypto_hash_sha256(digest.baseAddress!, data.baseAddress, UInt64(data.count))
            }
            initialized = digestLength
        }
    }
}

/// BLAKE2b (`crypto_generichash`), optionally keyed.
public enum BLAKE2b {
    /// Returns the BLAKE2b digest of `data`.
    ///
    /// - Parameters:
    ///   - outputLength: digest length in bytes, 16 through 64.
    ///   - key: empty for plain hashing, or 16 through 64 bytes for a keyed hash (a MAC).
    /// - Precondition: the lengths are in range.
    public static func hash(_ data: [UInt8], outputLength: Int = 32, key: [UInt8] = []) -> [UInt8] {
        Sodium.initialize()
        precondition(
            outputLength >= crypto_generichash_bytes_min() && outputLength <= crypto_generichash_bytes_max(),
            "BLAKE2b output length must be 16...64 bytes")
        precondition(
            key.isEmpty
                || (key.count >= crypto_generichash_keybytes_min() && key.count <= crypto_generichash_keybytes_max()),
            "BLAKE2b key must be empty or 16...64 bytes")
        return [UInt8](unsafeUninitializedCapacity: outputLength) { digest, initialized in
            let status = data.withUnsafeBufferPointer { data in
                key.withUnsafeBufferPointer { key in
                    crypto_generichash(
                        digest.baseAddress!, outputLength, data.baseAddress, UInt64(data.count),
                        key.isEmpty ? nil : key.baseAddress, key.count)
                }
            }
            precondition(status == 0, "crypto_generichash failed")
            initialized = outputLength
        }
    }
}

/// HMAC-SHA-256 (`crypto_auth_hmacsha256_*`), with a key of any length.
public enum HMACSHA256 {
    /// Tag length in bytes.
    public static let macLength = 32

    /// Returns the 32-byte HMAC-SHA-256 of `message` under `key`.
    ///
    /// Keys longer than the 64-byte block are hashed first, as RFC 2104 specifies.
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> [UInt8] {
        var state = keyedState(key)
        defer { wipe(&state) }
        update(&state, message)
        return finish(&state)
    }

    // MARK: Building blocks shared with HKDF

    /// A state keyed with `key`, ready for message bytes.
    static func keyedState(_ key: [UInt8]) -> crypto_auth_hmacsha256_state {
        Sodium.initialize()
        var state = crypto_auth_hmacsha256_state()
        withNonNullBytes(key) { key, keyLength in
            _ = crypto_auth_hmacsha256_init(&state, key, keyLength)
        }
        return state
    }

    /// Feeds `data` into `state`.
    static func update(_ state: inout crypto_auth_hmacsha256_state, _ data: UnsafeBufferPointer<UInt8>) {
        _ = crypto_auth_hmacsha256_update(&state, data.baseAddress, UInt64(data.count))
    }

    /// Feeds `data` into `state`.
    static func update(_ state: inout crypto_auth_hmacsha256_state, _ data: [UInt8]) {
        data.withUnsafeBufferPointer { update(&state, $0) }
    }

    /// Finishes `state` and returns the tag.
    static func finish(_ state: inout crypto_auth_hmacsha256_state) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: macLength) { mac, initialized in
            _ = crypto_auth_hmacsha256_final(&state, mac.baseAddress!)
            initialized = macLength
        }
    }

    /// Overwrites a state, which holds key-derived data, with zeros.
    static func wipe(_ state: inout crypto_auth_hmacsha256_state) {
        withUnsafeMutableBytes(of: &state) { sodium_memzero($0.baseAddress!, $0.count) }
    }
}

/// HKDF (RFC 5869) over HMAC-SHA-256.
///
/// libsodium 1.0.18 has no HKDF, so it is built here from ``HMACSHA256``.
public enum HKDF {
    /// The largest output of one ``expand(pseudoRandomKey:info:outputLength:)``: 255 blocks of 32 bytes.
    public static let maxOutputLength = 255 * 32

    /// HKDF-Extract: returns the 32-byte pseudorandom key `HMAC(salt, inputKeyMaterial)`.
    ///
    /// An empty salt acts as 32 zero bytes, as RFC 5869 specifies (HMAC pads keys with zeros).
    public static func extract(salt: [UInt8], inputKeyMaterial: [UInt8]) -> [UInt8] {
        HMACSHA256.authenticate(inputKeyMaterial, key: salt)
    }

    /// HKDF-Expand: returns `outputLength` bytes derived from `pseudoRandomKey` and `info`.
    ///
    /// - Precondition: `0 <= outputLength <= 255 * 32`.
    public static func expand(pseudoRandomKey: [UInt8], info: [UInt8], outputLength: Int) -> [UInt8] {
        precondition(outputLength >= 0 && outputLength <= maxOutputLength, "HKDF output length must be 0...8160 bytes")
        var keyed = HMACSHA256.keyedState(pseudoRandomKey)
        defer { HMACSHA256.wipe(&keyed) }
        var output: [UInt8] = []
        output.reserveCapacity(outputLength)
        var block: [UInt8] = []
        defer { secureZero(&block) }
        var counter: UInt8 = 1
        while output.count < outputLength {
            // T(i) = HMAC(PRK, T(i-1) || info || i), from a copy of the keyed state.
            var state = keyed
            HMACSHA256.update(&state, block)
            HMACSHA256.update(&state, info)
            withUnsafePointer(to: counter) { HMACSHA256.update(&state, UnsafeBufferPointer(start: $0, count: 1)) }
            secureZero(&block)
            block = HMACSHA256.finish(&state)
            HMACSHA256.wipe(&state)
            output.append(contentsOf: block.prefix(outputLength - output.count))
            counter &+= 1
        }
        return output
    }

    /// HKDF-Extract then HKDF-Expand, as RFC 5869 defines HKDF and Go's `hkdf.New` streams it.
    ///
    /// - Precondition: `0 <= outputLength <= 255 * 32`.
    public static func deriveKey(
        inputKeyMaterial: [UInt8], salt: [UInt8], info: [UInt8], outputLength: Int
    ) -> [UInt8] {
        var prk = extract(salt: salt, inputKeyMaterial: inputKeyMaterial)
        defer { secureZero(&prk) }
        return expand(pseudoRandomKey: prk, info: info, outputLength: outputLength)
    }
}
