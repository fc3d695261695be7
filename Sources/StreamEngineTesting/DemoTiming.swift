import StreamEngine

extension StreamConfiguration {
    /// Stream timing for a demo or test over a store with mean operation latency `latency`.
    ///
    /// Every value is derived from the latency with a floor, and the caps grow with it too, so
    /// that over any latency (the demo accepts 0...10 s) the result satisfies `validate()`:
    /// min retransmit timeout (2 L, at least 20 ms) <= initial (6 L, at least 100 ms) <= max
    /// (12 L, at least 5 s), and the read retry interval (2 L, at least 1 s) >= the min
    /// retransmit timeout. Fixed caps of 5 s and 1 s used to be crossed from 501 ms up.
    public static func demo(meanLatency latency: Duration) -> StreamConfiguration {
        var configuration = StreamConfiguration()
        let (seconds, attoseconds) = latency.components
        let ms = max(0, Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000))
        configuration.initialRetransmitTimeout = .milliseconds(max(100, 6 * ms))
        configuration.minRetransmitTimeout = .milliseconds(max(20, 2 * ms))
        configuration.maxRetransmitTimeout = .milliseconds(max(5_000, 12 * ms))
        configuration.ackDelay = .milliseconds(5)
        configuration.maxReadRetryInterval = .milliseconds(max(1_000, 2 * ms))
        configuration.sendWindow = 16
        configuration.readAhead = 18
        return configuration
    }
}
