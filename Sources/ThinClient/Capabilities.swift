import ThinWire

/// A Pigeonhole write capability: the 168-byte BACAP `WriteCap` (secret).
///
/// It holds an Ed25519 private key and the stream's starting ``MessageBoxIndex``. Its
/// description never shows the bytes.
public struct WriteCapability: Sendable, Hashable, CustomStringConvertible {
    /// The exact length: 168 bytes.
    public static let length = ThinSizes.writeCap

    /// The raw bytes, exactly ``length`` long.
    public let bytes: [UInt8]

    /// Wraps raw bytes.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/invalidArgument`` unless `bytes` is 168 bytes long.
    public init(bytes: [UInt8]) throws(ThinClientError) {
        try checkLength(bytes, Self.length, "write capability")
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The read capability of the same stream: the root public key and the same index.
    public var readCapability: ReadCapability {
        ReadCapability(unchecked: Array(bytes[CapabilityLayout.writeCapPublicKey]) + Array(bytes[CapabilityLayout.writeCapIndex]))
    }

    /// The index embedded in the capability (the stream's first index).
    public var embeddedIndex: MessageBoxIndex { MessageBoxIndex(unchecked: Array(bytes[CapabilityLayout.writeCapIndex])) }

    public var description: String { "WriteCapability(<redacted>)" }
}

/// A Pigeonhole read capability: the 136-byte BACAP `ReadCap` (secret).
///
/// It holds the stream's root public key and starting ``MessageBoxIndex``. Its description
/// never shows the bytes.
public struct ReadCapability: Sendable, Hashable, CustomStringConvertible {
    /// The exact length: 136 bytes.
    public static let length = ThinSizes.readCap

    /// The raw bytes, exactly ``length`` long.
    public let bytes: [UInt8]

    /// Wraps raw bytes.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/invalidArgument`` unless `bytes` is 136 bytes long.
    public init(bytes: [UInt8]) throws(ThinClientError) {
        try checkLength(bytes, Self.length, "read capability")
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The index embedded in the capability (the stream's first index).
    public var embeddedIndex: MessageBoxIndex { MessageBoxIndex(unchecked: Array(bytes[CapabilityLayout.readCapIndex])) }

    public var description: String { "ReadCapability(<redacted>)" }
}

/// A BACAP message box index: the 104-byte position of a box in a stream (secret).
///
/// It holds the counter and the keys that derive the box ID and its encryption key. Indexes
/// only move forward (``ThinClient/nextMessageBoxIndex(after:)``). The description shows the
/// counter only.
public struct MessageBoxIndex: Sendable, Hashable, CustomStringConvertible {
    /// The exact length: 104 bytes.
    public static let length = ThinSizes.messageBoxIndex

    /// The raw bytes, exactly ``length`` long.
    public let bytes: [UInt8]

    /// Wraps raw bytes.
    ///
    /// - Throws: ``ThinClientError/Code-swift.struct/invalidArgument`` unless `bytes` is 104 bytes long.
    public init(bytes: [UInt8]) throws(ThinClientError) {
        try checkLength(bytes, Self.length, "message box index")
        self.bytes = bytes
    }

    init(unchecked bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// The `Idx64` counter (little-endian bytes 0..<8); not zero-based, treat it as opaque.
    public var counter: UInt64 { CapabilityLayout.counter(ofIndex: bytes) ?? 0 }

    public var description: String { "MessageBoxIndex(counter: \(counter))" }
}

func checkLength(_ bytes: [UInt8], _ length: Int, _ what: String) throws(ThinClientError) {
    guard bytes.count == length else {
        throw ThinClientError(.invalidArgument, "\(what) must be exactly \(length) bytes, got \(bytes.count)")
    }
}
