import CSodium

/// The libsodium library: one-time initialization.
///
/// Every API of this module calls ``initialize()`` itself; callers need not.
public enum Sodium {
    /// The result of the single `sodium_init()` call; a `static let` runs exactly once, thread-safely.
    private static let status: Int32 = sodium_init()

    /// Initializes libsodium once; later calls, from any thread, return at once.
    ///
    /// Traps if libsodium cannot initialize (no usable random source), since no
    /// cryptography can run safely then.
    public static func initialize() {
        precondition(status >= 0, "libsodium failed to initialize")
    }
}

/// Overwrites the array's storage with zeros in a way the compiler cannot remove (`sodium_memzero`).
///
/// Zeroes the storage `bytes` refers to; if that storage is shared with another array, this
/// array first gets a private copy (copy-on-write), and the other copy is not wiped.
public func secureZero(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { buffer in
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        sodium_memzero(base, buffer.count)
    }
}

/// Compares two byte arrays in time that depends only on their length (`sodium_memcmp`).
///
/// Arrays of different lengths are unequal; the lengths themselves are not treated as secret.
public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    guard a.count > 0 else { return true }
    Sodium.initialize()
    return a.withUnsafeBytes { left in
        b.withUnsafeBytes { right in
            sodium_memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
        }
    }
}

/// Random bytes from the operating system's CSPRNG (`randombytes_buf`).
public enum SecureRandom {
    /// Returns `count` random bytes.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0, "negative byte count")
        Sodium.initialize()
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            if let base = buffer.baseAddress, count > 0 {
                randombytes_buf(base, count)
            }
            initialized = count
        }
    }

    /// Returns a uniformly random 64-bit integer.
    public static func uint64() -> UInt64 {
        Sodium.initialize()
        var value: UInt64 = 0
        withUnsafeMutableBytes(of: &value) { randombytes_buf($0.baseAddress!, $0.count) }
        return value
    }
}

/// Calls `body` with a pointer to `bytes` that is never null, as libsodium's `nonnull`
/// parameters require, even for an empty array (whose buffer may have no address).
@inline(__always)
func withNonNullBytes<R>(_ bytes: [UInt8], _ body: (UnsafePointer<UInt8>, Int) -> R) -> R {
    bytes.withUnsafeBufferPointer { buffer in
        if let base = buffer.baseAddress {
            return body(base, buffer.count)
        }
        let placeholder: UInt8 = 0
        return withUnsafePointer(to: placeholder) { body($0, 0) }
    }
}
