/// Bounds on what the store writes and reads back.
public enum StoreLimits {
    /// The largest blob (metadata, checkpoint, index snapshot, journal record) stored or read: 64 MiB.
    public static let maximumBlobSize = 64 << 20
    /// The most journal bytes read for one stream: 256 MiB.
    public static let maximumJournalBytes = 256 << 20
    /// The most journal rows read for one stream.
    public static let maximumJournalRows = 1 << 20
    /// The longest stream name, in UTF-8 bytes.
    public static let maximumNameSize = 1024
    /// The longest quarantine reason, in UTF-8 bytes.
    public static let maximumReasonSize = 4096
}
