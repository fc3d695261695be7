/// Byte layouts of Pigeonhole capabilities and indexes (hpqc `bacap`, integers little-endian).
///
/// Clients may treat capabilities as opaque blobs; these helpers only slice them.
/// - MessageBoxIndex (104): `Idx64` u64 LE (0..<8) ‖ K (8..<40) ‖ E (40..<72) ‖ H (72..<104).
/// - WriteCap (168): Ed25519 seed (0..<32) ‖ root public key (32..<64) ‖ MessageBoxIndex (64..<168).
/// - ReadCap (136): root public key (0..<32) ‖ MessageBoxIndex (32..<136).
public enum CapabilityLayout {
    /// The Ed25519 seed in a WriteCap.
    public static let writeCapSeed = 0..<32
    /// The root public key in a WriteCap.
    public static let writeCapPublicKey = 32..<64
    /// The MessageBoxIndex embedded in a WriteCap.
    public static let writeCapIndex = 64..<168
    /// The root public key in a ReadCap.
    public static let readCapPublicKey = 0..<32
    /// The MessageBoxIndex embedded in a ReadCap.
    public static let readCapIndex = 32..<136

    /// The `Idx64` counter of a 104-byte MessageBoxIndex (LE64 of its first 8 bytes), or `nil`
    /// if `index` is not 104 bytes.
    public static func counter(ofIndex index: [UInt8]) -> UInt64? {
        guard index.count == ThinSizes.messageBoxIndex else { return nil }
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(index[i]) }
        return v
    }

    /// The root public key of a 168-byte WriteCap (bytes 32..<64), or `nil` for a wrong length.
    public static func publicKey(ofWriteCap cap: [UInt8]) -> [UInt8]? {
        guard cap.count == ThinSizes.writeCap else { return nil }
        return Array(cap[writeCapPublicKey])
    }

    /// The root public key of a 136-byte ReadCap (bytes 0..<32), or `nil` for a wrong length.
    public static func publicKey(ofReadCap cap: [UInt8]) -> [UInt8]? {
        guard cap.count == ThinSizes.readCap else { return nil }
        return Array(cap[readCapPublicKey])
    }

    /// The MessageBoxIndex embedded in a WriteCap (bytes 64..<168), or `nil` for a wrong length.
    public static func index(ofWriteCap cap: [UInt8]) -> [UInt8]? {
        guard cap.count == ThinSizes.writeCap else { return nil }
        return Array(cap[writeCapIndex])
    }

    /// The MessageBoxIndex embedded in a ReadCap (bytes 32..<136), or `nil` for a wrong length.
    public static func index(ofReadCap cap: [UInt8]) -> [UInt8]? {
        guard cap.count == ThinSizes.readCap else { return nil }
        return Array(cap[readCapIndex])
    }
}
