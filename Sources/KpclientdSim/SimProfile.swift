/// A named set of realistic network parameters for the simulator.
///
/// Without a profile the simulator is unpaced (every request goes out at once), which keeps tests
/// fast but hides the costs of the real network. The profiles turn on the network model with the
/// values read from the Katzenpost sources:
///
/// | | mainnet | testnet |
/// |---|---|---|
/// | λP (`LambdaP`) | 0.00025 / ms (one tick per 4 s) | 0.001 / ms (one tick per s) |
/// | mean round trip | 2 s | 1 s |
/// | couriers | 3 | 2 |
/// | ARQ retransmit slop | 20 s | 20 s |
/// | courier dedup cache | 5 min, 5 refreshes | 5 min, 5 refreshes |
/// | box lifetime | 7 days | 7 days |
///
/// The round trips are estimates (about ten hops at the document's `Mu` of 0.005 / ms, i.e.
/// 200 ms per hop, on mainnet), not measurements. Couriers do not churn in a profile; add
/// ``KpclientdSimConfiguration/courierChurnInterval`` for that.
public enum KpclientdSimProfile: String, Sendable, CaseIterable, CustomStringConvertible {
    /// The public network's defaults: λP = 0.00025 per ms.
    case mainnet
    /// The docker testnet's defaults: λP = 0.001 per ms.
    case testnet

    /// λP in sends per millisecond.
    public var lambdaP: Double {
        switch self {
        case .mainnet: return 0.00025
        case .testnet: return 0.001
        }
    }

    public var description: String { rawValue }

    /// Sets the profile's values on `configuration` (other settings are kept).
    ///
    /// - Parameter speedup: runs the profile's clock this many times faster: the send rate is
    ///   multiplied by it and every duration of the profile (round trip, retransmission slop,
    ///   dedup cache TTL, redispatch grace, resend backoff, box lifetime) divided by it, so
    ///   counts of ticks, retransmissions and stale answers stay those of the real profile while
    ///   a test runs `speedup` times faster. Courier churn is not part of a profile: scale
    ///   ``KpclientdSimConfiguration/courierChurnInterval`` yourself.
    public func apply(to configuration: inout KpclientdSimConfiguration, speedup: Double = 1) {
        let k = speedup > 0 && speedup.isFinite ? speedup : 1
        func scaled(_ d: Duration) -> Duration { .nanoseconds(Int64((d.seconds / k * 1e9).rounded())) }
        configuration.rate = lambdaP * 1000 * k
        configuration.networkModel = true
        configuration.roundTripSlop = scaled(.seconds(20))
        configuration.dedupCacheTTL = scaled(.seconds(300))
        configuration.maxRedispatchAttempts = 5
        configuration.redispatchGrace = scaled(.seconds(30))
        configuration.resendQueueFullBackoff = max(scaled(.milliseconds(100)), .microseconds(100))
        configuration.resendQueueCapacity = 8
        configuration.mixnetQueueCapacity = 16
        configuration.boxTTL = scaled(.seconds(7 * 86_400))
        switch self {
        case .mainnet:
            configuration.meanLatency = scaled(.seconds(2))
            configuration.courierCount = 3
        case .testnet:
            configuration.meanLatency = scaled(.seconds(1))
            configuration.courierCount = 2
        }
    }
}

extension KpclientdSimConfiguration {
    /// Parses a courier churn setting: a mean interval between departures (`10m`, `90s`) or a
    /// rate of departures (`6/h`, `0.5/m`, `2/s`); returns the mean interval.
    public static func parseChurn(_ text: String) throws(SimConfigurationError) -> Duration {
        if let slash = text.firstIndex(of: "/") {
            let unitSeconds: Double
            switch text[text.index(after: slash)...] {
            case "s": unitSeconds = 1
            case "m", "min": unitSeconds = 60
            case "h": unitSeconds = 3600
            case "d": unitSeconds = 86_400
            default: throw SimConfigurationError("invalid churn rate \(text) (examples: 6/h, 0.5/m, 10m)")
            }
            guard let count = Double(text[..<slash]), count > 0, count.isFinite else {
                throw SimConfigurationError("invalid churn rate \(text) (examples: 6/h, 0.5/m, 10m)")
            }
            let seconds = unitSeconds / count
            guard seconds >= 1e-3, seconds < 1e9 else { throw SimConfigurationError("churn rate out of range: \(text)") }
            return .nanoseconds(Int64(seconds * 1e9))
        }
        let interval = try parseDuration(text)
        guard interval > .zero else { throw SimConfigurationError("churn interval must be positive: \(text)") }
        return interval
    }
}
