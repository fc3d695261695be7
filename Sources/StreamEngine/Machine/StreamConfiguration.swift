/// Tuning knobs of a stream; every value is bounded and checked by ``validate()``.
///
/// The defaults suit Pigeonhole over a mixnet: round trips of seconds, boxes of about 1.5 KiB.
public struct StreamConfiguration: Hashable, Sendable {
    /// The most data frames sent but not yet acknowledged (or, in multicast, not yet verified).
    public var sendWindow: Int = 8
    /// How many upcoming box indices an active stream reads in parallel; at least 2, so that a
    /// reader can look past a lost ack-only box.
    public var readAhead: Int = 10
    /// Bytes of app data buffered for sending before ``StreamMachine/appWrite(_:now:)`` accepts no more.
    public var maxWriteBuffer: Int = 256 * 1024
    /// Bytes of received data buffered for the app before the stream stops reading ahead.
    public var maxReadBuffer: Int = 256 * 1024
    /// The retransmission timeout before any round trip has been measured.
    public var initialRetransmitTimeout: Duration = .seconds(3)
    /// The smallest retransmission timeout.
    public var minRetransmitTimeout: Duration = .milliseconds(200)
    /// The largest retransmission timeout, after exponential backoff.
    public var maxRetransmitTimeout: Duration = .seconds(60)
    /// The largest fraction of random jitter added to each retransmission timeout.
    public var retransmitJitter: Double = 0.25
    /// The longest wait before retrying a read that failed; retries back off up to this value.
    public var maxReadRetryInterval: Duration = .seconds(30)
    /// How long a receiver waits to coalesce acknowledgements before sending an ack-only frame.
    public var ackDelay: Duration = .milliseconds(100)
    /// How long without activity before a stream counts as idle and switches to polling.
    public var idleAfter: Duration = .seconds(30)
    /// The first polling interval of an idle stream.
    public var minIdlePollInterval: Duration = .seconds(1)
    /// The longest polling interval of an idle stream; polling backs off up to this value.
    ///
    /// Until the peer's first frame arrives (a listener whose dialer has not joined yet),
    /// retransmissions back off up to this value too, when it exceeds ``maxRetransmitTimeout``:
    /// a peer that may not exist yet is retried no more often than an idle peer is polled.
    public var maxIdlePollInterval: Duration = .seconds(300)
    /// The most transport operations (box writes and reads) this stream keeps in flight at once:
    /// the budget the embedder gives it, separate from the window. Retransmissions and the read
    /// the stream is blocked on go first.
    public var maxOperationsInFlight: Int = 1024
    /// How long an operation may stay in flight before the stream cancels it and issues it
    /// again: a transport that never answers (an ARQ stuck on a departed courier) cannot stall
    /// a frame or a read for ever.
    public var operationTimeout: Duration = .seconds(120)
    /// How long a stream closed both ways keeps polling after its last activity, to answer a
    /// peer whose last acknowledgement was lost; after that it stops all I/O.
    public var closeLinger: Duration = .seconds(600)
    /// How many **confirmation copies** a quiet stream (at most two data frames outstanding)
    /// writes of its newest data frame, together with its first write; with any, the frame is
    /// flagged ``Frame/Flags/quiet`` so that the peer reads the box after it with
    /// ``parallelReadsAfterQuietFrame`` reads. A write's success does not prove the box was
    /// stored, and on a quiet stream only the retransmission timer would notice, several round
    /// trips later; each copy costs one box write per such frame (none in bulk transfer).
    public var quietFrameCopies: Int = 2
    /// How many reads at once this end keeps on the peer's next box after a frame flagged
    /// ``Frame/Flags/quiet`` (1: no extra reads). The first of them to return the frame
    /// delivers it; each extra read costs one box read per such frame, none in bulk transfer.
    public var parallelReadsAfterQuietFrame: Int = 3
    /// How many times one box may fail to decrypt before the stream reports ``StreamError/Code-swift.struct/frameDecrypt``.
    public var maxDecryptFailures: Int = 3

    /// Creates a configuration with the defaults.
    public init() {}

    /// Checks that every value is within its bounds.
    public func validate() throws(StreamError) {
        func check(_ condition: Bool, _ what: String) throws(StreamError) {
            if !condition { throw StreamError(.invalidConfiguration, what) }
        }
        try check((1...1024).contains(sendWindow), "sendWindow must be 1...1024")
        try check((2...1024).contains(readAhead), "readAhead must be 2...1024")
        try check((1...(1 << 30)).contains(maxWriteBuffer), "maxWriteBuffer must be 1 B...1 GiB")
        try check((1...(1 << 30)).contains(maxReadBuffer), "maxReadBuffer must be 1 B...1 GiB")
        try check(minRetransmitTimeout > .zero, "minRetransmitTimeout must be positive")
        try check(minRetransmitTimeout <= initialRetransmitTimeout, "initialRetransmitTimeout must be >= minRetransmitTimeout")
        try check(initialRetransmitTimeout <= maxRetransmitTimeout, "maxRetransmitTimeout must be >= initialRetransmitTimeout")
        try check((0...1).contains(retransmitJitter), "retransmitJitter must be 0...1")
        try check(maxReadRetryInterval >= minRetransmitTimeout, "maxReadRetryInterval must be >= minRetransmitTimeout")
        try check(ackDelay >= .zero, "ackDelay must not be negative")
        try check(idleAfter > .zero, "idleAfter must be positive")
        try check(minIdlePollInterval > .zero, "minIdlePollInterval must be positive")
        try check(minIdlePollInterval <= maxIdlePollInterval, "maxIdlePollInterval must be >= minIdlePollInterval")
        try check((2...65_536).contains(maxOperationsInFlight), "maxOperationsInFlight must be 2...65536")
        try check(operationTimeout >= minRetransmitTimeout, "operationTimeout must be >= minRetransmitTimeout")
        try check(closeLinger >= .zero, "closeLinger must not be negative")
        try check((1...1000).contains(maxDecryptFailures), "maxDecryptFailures must be 1...1000")
        try check((1...8).contains(parallelReadsAfterQuietFrame), "parallelReadsAfterQuietFrame must be 1...8")
        try check((0...4).contains(quietFrameCopies), "quietFrameCopies must be 0...4")
    }
}

extension StreamConfiguration {
    /// The configuration with every duration divided by `speedup`: for running a scenario
    /// `speedup` times faster than real time, as kpclientd-sim's `--speedup` does for its
    /// network model. Counts and sizes are unchanged.
    public func speededUp(by speedup: Double) -> StreamConfiguration {
        var copy = self
        let k = speedup > 0 && speedup.isFinite ? speedup : 1
        func faster(_ duration: Duration) -> Duration { duration.scaled(by: 1 / k) }
        copy.initialRetransmitTimeout = faster(initialRetransmitTimeout)
        copy.minRetransmitTimeout = faster(minRetransmitTimeout)
        copy.maxRetransmitTimeout = faster(maxRetransmitTimeout)
        copy.maxReadRetryInterval = faster(maxReadRetryInterval)
        copy.ackDelay = faster(ackDelay)
        copy.idleAfter = faster(idleAfter)
        copy.minIdlePollInterval = faster(minIdlePollInterval)
        copy.maxIdlePollInterval = faster(maxIdlePollInterval)
        copy.operationTimeout = faster(operationTimeout)
        copy.closeLinger = faster(closeLinger)
        return copy
    }
}
