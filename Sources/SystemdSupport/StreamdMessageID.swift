/// Stable journal `MESSAGE_ID`s for streamd's key events, so that `journalctl MESSAGE_ID=…`
/// finds them across releases.
///
/// Log statements name the event with the metadata key `event`; ``JournalLogHandler`` adds the
/// matching `MESSAGE_ID`.
public enum StreamdMessageID {
    /// The metadata key naming an event.
    public static let metadataKey = "event"

    /// Streams restored from the database at start-up.
    public static let streamsRestored = "7c9e3d0a4f1b4e6a9d2c5b8e1f3a6d90"
    /// A stream was opened (created or joined).
    public static let streamOpened = "2b6f8e1c9a3d4f7b8e0c1d2a5b6c7e81"
    /// The peer closed a stream.
    public static let peerClosed = "e4a1c7d9b2f64e3a8c5d0b7f9e2a1c63"
    /// The connection to kpclientd was lost.
    public static let kpclientdLost = "91d5b3e7f0a24c8d9b6e1a3c5f7d2e44"

    /// Event names (the `event` metadata values) and their ids.
    public static let byEvent: [String: String] = [
        "streams-restored": streamsRestored,
        "stream-opened": streamOpened,
        "peer-closed": peerClosed,
        "kpclientd-lost": kpclientdLost,
    ]
}
