import CBOR

/// Size limits of the app protocol; both sides enforce them when decoding.
///
/// docs/IPC.md is normative; these constants are its numbers.
public enum IPCLimits {
    /// The largest frame payload (the CBOR map after the 4-byte length prefix): 1 MiB.
    ///
    /// Receivers check the length prefix against it before buffering the payload.
    public static let maxFrameSize = 1 << 20
    /// The most data bytes one `write` request carries or one `data` reply returns: 256 KiB.
    public static let maxChunk = 256 << 10
    /// The longest stream name, in bytes (names are ASCII).
    public static let maxNameLength = 64
    /// The longest stream address text, in UTF-8 bytes.
    public static let maxAddressLength = 8192
    /// The longest operation, reply kind or event name, in UTF-8 bytes.
    public static let maxOperationLength = 64
    /// The longest free-text field (client and daemon descriptions, error messages, failure
    /// reasons, the kpclientd description), in UTF-8 bytes; encoders truncate longer text.
    public static let maxTextLength = 1024
    /// The longest engine diagnostics text of a stream description (``IPCStreamInfo/engine``),
    /// in UTF-8 bytes; encoders truncate longer text.
    public static let maxEngineTextLength = 8192
    /// The most stream names one `subscribe` request may list.
    public static let maxSubscribeNames = 1024
    /// The most features one `hello` reply may list.
    public static let maxFeatures = 64
    /// The longest feature name, in UTF-8 bytes.
    public static let maxFeatureLength = 64
    /// The length of the daemon's per-run instance identifier, in bytes.
    public static let instanceLength = 16

    /// CBOR decoding limits for requests (from apps): shallow and small.
    public static let requestCBORLimits = CBORDecoder.Limits(maxDepth: 4, maxItems: 4 * maxSubscribeNames + 64)
    /// CBOR decoding limits for server messages (from the daemon): a `list` reply may hold
    /// thousands of stream descriptions.
    public static let serverCBORLimits = CBORDecoder.Limits(maxDepth: 6, maxItems: 200_000)
}
