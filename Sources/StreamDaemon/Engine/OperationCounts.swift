import StreamEngine

/// What the host's streams asked of kpclientd since start: transport operations started, by
/// kind, and why their box writes were made (for benchmarks and diagnostics).
public struct OperationCounts: Sendable, Hashable {
    /// Box writes started.
    public var writes = 0
    /// Reads started that wait for their box (``BoxReadMode/wait``; each may poll many times).
    public var waitingReads = 0
    /// Single polls started (``BoxReadMode/poll``: idle polls and probes ahead).
    public var polls = 0
    /// Group commits queued on the store thread.
    public var groupCommits = 0
    /// Journal records those group commits carried (compacted ones included).
    public var recordsCommitted = 0
    /// Frames created (journalled `frameCreated` records), by kind.
    public var framesCreated: [FrameKind: Int] = [:]
    /// Why the box writes were made, summed over the streams running now.
    public var sends = StreamSendStatistics()

    /// Creates zero counts.
    public init() {}
}
