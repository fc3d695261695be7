import CSodium

/// Secret bytes of a fixed length in memory of their own, zeroed (`sodium_memzero`) when the last
/// reference goes: for key material kept as long as its owner, such as a stream direction's
/// frame key.
///
/// Sendable: the bytes are written only while the object is made and only read afterwards.
/// Never printed: its description and mirror are redacted.
public final class SecretBytes: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    /// The bytes: `count` of them, read-only after `init`.
    @usableFromInline let storage: UnsafeMutableRawBufferPointer

    /// Allocates `count` bytes and lets `initialize` write every one of them.
    ///
    /// - Precondition: `count` is positive.
    public init(count: Int, initializingWith initialize: (UnsafeMutableRawBufferPointer) -> Void) {
        precondition(count > 0, "secret bytes have a length")
        storage = .allocate(byteCount: count, alignment: 16)
        initialize(storage)
    }

    deinit {
        sodium_memzero(storage.baseAddress!, storage.count)
        storage.deallocate()
    }

    /// The number of bytes.
    public var count: Int { storage.count }

    /// Calls `body` with the bytes; `body` must not keep the pointer.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    public var description: String { "SecretBytes(\(count) B, redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["bytes": "redacted"]) }
}
