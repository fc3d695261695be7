import CSodium

/// libsodium's key derivation (`crypto_kdf_derive_from_key`): subkeys numbered by a 64-bit id
/// from one 32-byte master key, in one BLAKE2b call each.
///
/// Subkey `id` under context `ctx` is `BLAKE2b(message = "", key = masterKey,
/// salt = LE64(id) ‖ 0⁸, personal = ctx ‖ 0⁸, outputLength)`, as libsodium 1.0.18 defines it.
/// Different ids or contexts give independent subkeys.
public enum SubkeyDerivation {
    /// Master key length in bytes.
    public static let masterKeyLength = 32
    /// Context length in bytes: the context separates the subkeys of different purposes.
    public static let contextLength = 8
    /// The shortest subkey one call derives.
    public static let minSubkeyLength = 16
    /// The longest subkey one call derives.
    public static let maxSubkeyLength = 64

    /// Returns subkey `id` of `masterKey` under `context`.
    ///
    /// - Precondition: `masterKey` is 32 bytes, `context` 8 bytes, and `length` 16 through 64.
    public static func derive(length: Int, id: UInt64, context: [UInt8], masterKey: [UInt8]) -> [UInt8] {
        withSubkey(length: length, id: id, context: context, masterKey: masterKey) { Array($0) }
    }

    /// Derives subkey `id` of `masterKey` under `context` into a temporary buffer, calls `body`
    /// with it, and zeroes the buffer before returning; nothing is allocated on the heap.
    ///
    /// Inlinable, so that callers get it specialized for their result type: unspecialized, each
    /// call looks up the generic metadata of its result.
    ///
    /// - Precondition: `masterKey` is 32 bytes, `context` 8 bytes, and `length` 16 through 64.
    @inlinable
    public static func withSubkey<R>(
        length: Int, id: UInt64, context: [UInt8], masterKey: [UInt8],
        _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        precondition(masterKey.count == masterKeyLength, "the master key must be 32 bytes")
        precondition(context.count == contextLength, "the context must be 8 bytes")
        precondition(length >= minSubkeyLength && length <= maxSubkeyLength, "a subkey is 16...64 bytes")
        Sodium.initialize()
        return try withUnsafeTemporaryAllocation(byteCount: length, alignment: 8) { buffer in
            let subkey = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            defer { sodium_memzero(buffer.baseAddress!, length) }
            let status = context.withUnsafeBytes { context in
                masterKey.withUnsafeBufferPointer { key in
                    crypto_kdf_derive_from_key(
                        subkey, length, id, context.baseAddress!.assumingMemoryBound(to: CChar.self), key.baseAddress!)
                }
            }
            precondition(status == 0, "crypto_kdf_derive_from_key failed")
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }
}
