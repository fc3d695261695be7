import KpclientdSim
import PigeonholeTransport
import StreamEngine
import ThinClient

/// How streamd paces, times and polls its requests to kpclientd: the `[pacing]`, `[deadline]`
/// and `[poll]` tables.
public struct TransportTuning: Sendable, Hashable {
    /// The most requests queued at kpclientd and not yet sent (kpclientd's own queue holds 16).
    public var daemonQueueCapacity: Int = 16
    /// The longest a request should wait in kpclientd's queue for its send tick: the client
    /// queues at most λP × this there (`nil`: up to ``daemonQueueCapacity``).
    public var maxQueueDelay: Duration? = .seconds(4)
    /// λP (ticks per millisecond) assumed until kpclientd sends a PKI document with `LambdaP`.
    public var fallbackLambdaP: Double = 0.00025
    /// The network round trip assumed when sizing each stream's operation budget.
    public var expectedRoundTrip: Duration = .seconds(2)
    /// The deadline of each request to kpclientd (`nil`: none).
    public var deadline: DeadlinePolicy? = DeadlinePolicy()
    /// When waiting reads poll, and how far ahead: by default only 2 boxes past each channel's
    /// frontier (``PollSchedule/ahead``; the library's own default polls every box read ahead).
    /// On a paced mixnet every poll of a box not yet written costs two send ticks, and a writer
    /// fills boxes in order.
    public var poll = PollSchedule(ahead: 2)

    /// Creates the defaults.
    public init() {}

    /// Sets the thin client settings these values give (the others are kept).
    func apply(to configuration: inout ThinClientConfiguration) {
        configuration.daemonQueueCapacity = daemonQueueCapacity
        configuration.maxDaemonQueueDelay = maxQueueDelay
        configuration.fallbackLambdaP = fallbackLambdaP
        configuration.operationDeadline = deadline
    }

    func validate() throws(ConfigurationError) {
        func check(_ condition: Bool, _ key: String, _ why: String) throws(ConfigurationError) {
            if !condition { throw ConfigurationError(key: key, message: why) }
        }
        try check((1...16).contains(daemonQueueCapacity), "pacing.daemon_queue_capacity", "must be between 1 and 16")
        try check(maxQueueDelay.map { $0 >= .milliseconds(1) && $0 <= .seconds(3600) } ?? true, "pacing.max_queue_delay",
            "must be between 1ms and 1h, or \"none\"")
        try check(fallbackLambdaP.isFinite && fallbackLambdaP >= 1e-6 && fallbackLambdaP <= 1000, "pacing.fallback_lambda_p",
            "must be between 0.000001 and 1000 ticks per millisecond")
        try check(expectedRoundTrip >= .milliseconds(1) && expectedRoundTrip <= .seconds(600), "pacing.expected_round_trip",
            "must be between 1ms and 10m")
        if let deadline {
            try check(deadline.multiplier.isFinite && deadline.multiplier <= 100, "deadline.multiplier", "must be between 1 and 100")
            try check(deadline.slop <= .seconds(3600), "deadline.slop", "must be at most 1h")
            try check(deadline.floor >= .seconds(1), "deadline.floor", "must be at least 1s")
            try check(deadline.ceiling >= deadline.floor && deadline.ceiling <= .seconds(86_400), "deadline.ceiling",
                "must be between deadline.floor and 24h")
            try check(deadline.initialRoundTrip <= .seconds(3600), "deadline.initial_round_trip", "must be at most 1h")
        }
        try check(poll.firstPause.isFinite && poll.firstPause <= 1000, "poll.first_pause", "must be between 0 and 1000 round trips")
        try check(poll.maxPause.isFinite && poll.maxPause <= 1000, "poll.max_pause", "must be between poll.first_pause and 1000 round trips")
        try check(poll.multiplier.isFinite && poll.multiplier <= 100, "poll.multiplier", "must be between 1 and 100")
        try check(poll.shortest >= .milliseconds(1), "poll.shortest", "must be at least 1ms")
        try check(poll.longest <= .seconds(3600), "poll.longest", "must be between poll.shortest and 1h")
        try check(poll.ahead == .max || poll.ahead <= 1024, "poll.ahead", "must be between 1 and 1024")
    }
}

extension DaemonConfiguration {
    /// The sizing of streams to kpclientd's λP, or `nil` when kpclientd is not paced (the
    /// embedded simulator without a profile sends at once). A real kpclientd is sized with
    /// [pacing] `fallback_lambda_p` and `expected_round_trip`.
    var transportSizing: TransportSizing? {
        switch kpclientd {
        case .embedded:
            guard let profile = embedded.profile else { return nil }
            var simulated = KpclientdSimConfiguration()
            profile.apply(to: &simulated)
            return TransportSizing(ticksPerSecond: profile.lambdaP * 1000, roundTrip: simulated.meanLatency)
        case .dial:
            return TransportSizing(ticksPerSecond: transport.fallbackLambdaP * 1000, roundTrip: transport.expectedRoundTrip)
        }
    }

    /// Each stream's in-flight operation budget: ``StreamTuning/maxOperationsInFlight`` if set,
    /// else sized from λP for one active stream (``TransportSizing/operationsInFlight(streams:limit:)``),
    /// or the engine's default when kpclientd is not paced.
    public var streamOperationBudget: Int {
        if let fixed = stream.maxOperationsInFlight { return fixed }
        return transportSizing?.operationsInFlight(streams: 1) ?? StreamConfiguration().maxOperationsInFlight
    }

    /// Each stream's largest retransmission timeout: ``StreamTuning/maxRetransmitTimeout`` if
    /// set, else at least the time an acknowledgement can take at λP
    /// (``TransportSizing/retransmitTimeoutCeiling(longestPoll:)``), or the engine's default
    /// when kpclientd is not paced.
    public var streamRetransmitCeiling: Duration {
        if let fixed = stream.maxRetransmitTimeout { return fixed }
        let engine = StreamConfiguration().maxRetransmitTimeout
        guard let sizing = transportSizing else { return engine }
        return max(engine, sizing.retransmitTimeoutCeiling(longestPoll: transport.poll.longest))
    }

    /// A quiet stream's confirmation copies and parallel reads after a quiet frame:
    /// ``StreamTuning/quietFrameCopies`` and ``StreamTuning/quietParallelReads`` where set, else
    /// the engine's (2 and 3) when kpclientd is not paced, and 1 and 1 when it is: there each copy
    /// and each waiting read (which polls its box) takes a send tick from every other stream.
    public var streamQuietTradeOff: (copies: Int, parallelReads: Int) {
        let paced = transportSizing != nil
        let engine = StreamConfiguration()
        return (stream.quietFrameCopies ?? (paced ? 1 : engine.quietFrameCopies),
                stream.quietParallelReads ?? (paced ? 1 : engine.parallelReadsAfterQuietFrame))
    }

    /// The engine configuration of every stream: ``StreamTuning`` and the sizing to λP.
    public var streamConfiguration: StreamConfiguration {
        var configuration = stream.engineConfiguration
        configuration.maxOperationsInFlight = streamOperationBudget
        configuration.maxRetransmitTimeout = streamRetransmitCeiling
        (configuration.quietFrameCopies, configuration.parallelReadsAfterQuietFrame) = streamQuietTradeOff
        return configuration
    }
}
