import Logging

/// Where the simulator listens.
public enum SimListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// TCP on `host:port`; port 0 picks an ephemeral port.
    case tcp(host: String, port: Int)
    /// A Unix domain socket at a file-system path.
    case unix(path: String)
    /// A Linux abstract Unix socket `\0name` (written `@name`).
    case abstract(name: String)

    /// Parses `tcp:HOST:PORT`, `unix:PATH` or `@name`.
    public init(parsing text: String) throws(SimConfigurationError) {
        if text.hasPrefix("@") {
            let name = String(text.dropFirst())
            guard !name.isEmpty, name.utf8.count <= 106 else { throw SimConfigurationError("invalid abstract socket name: \(text)") }
            self = .abstract(name: name)
        } else if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty, path.utf8.count <= 103 else { throw SimConfigurationError("invalid unix socket path: \(text)") }
            self = .unix(path: path)
        } else if text.hasPrefix("tcp:") {
            let rest = text.dropFirst(4)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
                throw SimConfigurationError("invalid tcp address (want tcp:HOST:PORT): \(text)")
            }
            var host = String(rest[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw SimConfigurationError("missing host in \(text)") }
            self = .tcp(host: host, port: port)
        } else {
            throw SimConfigurationError("unknown listen address \(text) (want tcp:HOST:PORT, unix:PATH or @name)")
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .unix(let path): return "unix:\(path)"
        case .abstract(let name): return "@\(name)"
        }
    }
}

/// An invalid simulator configuration value.
public struct SimConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// Creates the error.
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Everything that shapes a ``KpclientdSimulator``.
public struct KpclientdSimConfiguration: Sendable {
    /// The listener (default `tcp:127.0.0.1:64331`).
    public var listen: SimListenAddress = .tcp(host: "127.0.0.1", port: 64331)
    /// The mean of the exponential latency of each mixnet round trip (default zero).
    public var meanLatency: Duration = .zero
    /// Mixnet send ticks per second (Poisson, shared round-robin across connections): λP × 1000,
    /// published as `LambdaP` in the PKI document. `nil` (the default) releases requests at once.
    /// Without ``networkModel`` only the first send of each request waits for a tick.
    public var rate: Double?
    /// Whether the network model is on (when ``rate`` is set): every packet, follow-up poll,
    /// retry of a read of an empty box and retransmission costs a tick, resends go first, and
    /// couriers answer from their dedup cache. Off (the default), a read of an empty box simply
    /// waits for the write. The profiles and `--send-rate`/`--lambda-p` turn it on.
    public var networkModel = false
    /// The probability that a write is acknowledged by the courier but never stored.
    public var writeLossProbability: Double = 0
    /// When set, every client connection is dropped (without `shutdown_event`) this often.
    public var disconnectEvery: Duration?
    /// A file in which the box store survives restarts.
    public var statePath: String?
    /// A seed making the simulator's randomness reproducible.
    public var seed: UInt64?
    /// The Pigeonhole `MaxPlaintextPayloadLength` (M); the rest of the geometry is derived.
    public var maxPlaintextPayloadLength: Int = 1549
    /// How long a session whose client dropped without `thin_close` is kept (default 10 min).
    public var grace: Duration = .seconds(600)
    /// The `is_connected` reported in `connection_status_event`.
    public var isConnectedToMixnet: Bool = true
    /// Whether frames carry every response key with nulls, as the Go daemon's do (default), or one key.
    public var goStyleResponses: Bool = true

    /// The per-connection mixnet-path queue of requests not yet sent (16, `perClientRequestBuf`,
    /// in the real daemon). While it is full the connection is not read from.
    public var mixnetQueueCapacity: Int = 16
    /// The per-connection queue of ARQ resends waiting for a send tick (8, `perClientResendBuf`,
    /// in the real daemon). While it is full a resend is re-armed after ``resendQueueFullBackoff``.
    public var resendQueueCapacity: Int = 8
    /// How long a resend that found the resend queue full waits before trying again (100 ms).
    public var resendQueueFullBackoff: Duration = .milliseconds(100)
    /// The slop the daemon adds to the expected round trip before it retransmits an ARQ packet
    /// that got no reply (`RoundTripTimeSlop`, 20 s). Scale it down in tests.
    public var roundTripSlop: Duration = .seconds(20)
    /// How long a courier keeps an envelope's cached replica answer (`DedupCacheTTL`, 5 min).
    public var dedupCacheTTL: Duration = .seconds(300)
    /// How often a courier refreshes a cached error answer for one envelope, at the client's
    /// polls (`maxRedispatchAttempts`, 5).
    public var maxRedispatchAttempts: Int = 5
    /// How old a cache entry without any replica answer must be before a poll re-dispatches it
    /// (`redispatchGrace`, 30 s).
    public var redispatchGrace: Duration = .seconds(30)
    /// How many couriers the PKI document lists (each ARQ picks one at random and keeps it).
    public var courierCount: Int = 1
    /// The mean interval between courier departures (Poisson); `nil`: couriers never leave.
    /// A departed courier is replaced by a fresh one, and the ARQs bound to it never complete.
    public var courierChurnInterval: Duration?
    /// How long a stored box lives; `nil` (the default): for ever. The real replicas keep two
    /// 7-day buckets, so a box lives between 7 and 14 days; the named profiles use 7 days.
    public var boxTTL: Duration?
    /// The most boxes the store holds (beyond: StorageFull).
    public var maxBoxes: Int = 100_000
    /// The most unfinished ARQ and copy operations per session (beyond: InternalError).
    public var maxOperationsPerSession: Int = 1024
    /// The most legacy replies queued for an absent client (1000 in the real daemon).
    public var maxQueuedLegacyReplies: Int = 1000
    /// The most simultaneous client connections (beyond: new ones are closed at once, logged at debug).
    public var maxConnections: Int = 256
    /// How long a new connection may take to send its first complete frame (beyond: it is closed).
    public var handshakeTimeout: Duration = .seconds(30)
    /// How long a frame may stay incomplete once its first byte has arrived (beyond: the connection is closed).
    public var frameTimeout: Duration = .seconds(30)
    /// The most bytes all connections together may hold in incomplete inbound frames (beyond:
    /// the connection whose bytes crossed the limit is closed).
    public var maxBufferedInboundBytes: Int = 256 << 20
    /// The most sessions, connected or in their grace period (beyond: the oldest absent one is destroyed).
    public var maxSessions: Int = 1024
    /// The most bytes queued for one connection that is not reading (beyond: it is disconnected).
    public var maxPendingOutboundBytes: Int = 96 << 20
    /// The most elements a copy command reads from its temporary stream.
    public var maxCopyElements: Int = 20_000
    /// The logger (secrets are never logged).
    public var logger: Logger = Logger(label: "kpclientd-sim")

    /// A configuration with the defaults.
    public init() {}

    /// λP, the send ticks per millisecond published in the PKI document (`LambdaP`): the rate
    /// divided by 1000, or 1.0 when unpaced (no real network is that fast; a client pacing
    /// itself to it is effectively unpaced).
    public var lambdaP: Double { rate.map { $0 / 1000 } ?? 1.0 }

    /// Whether the network model (ticks for every packet, courier dedup cache) is on.
    public var isPaced: Bool { networkModel && rate != nil }

    /// Parses a duration such as `50ms`, `1s`, `1.5s`, `2m`, `1h`, `7d`, `250us` or `0`.
    public static func parseDuration(_ text: String) throws(SimConfigurationError) -> Duration {
        let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        let trimmed = text.trimmingWhitespace
        if trimmed == "0" { return .zero }
        for (suffix, scale) in units where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count)
            // "ms" also ends in "s"; make sure the number part is numeric.
            guard let value = Double(number), value >= 0, value.isFinite else { continue }
            let nanos = value * scale * 1e9
            guard nanos < 9e18 else { throw SimConfigurationError("duration too long: \(text)") }
            return .nanoseconds(Int64(nanos.rounded()))
        }
        throw SimConfigurationError("invalid duration \(text) (examples: 50ms, 1s, 10m)")
    }

    /// Checks the values for consistency.
    public func validate() throws(SimConfigurationError) {
        guard maxPlaintextPayloadLength >= 64, maxPlaintextPayloadLength <= 1 << 20 else {
            throw SimConfigurationError("max plaintext payload length must be in 64...1048576")
        }
        if let rate, !(rate > 0 && rate.isFinite) { throw SimConfigurationError("rate must be positive") }
        guard (0...1).contains(writeLossProbability) else { throw SimConfigurationError("write loss must be in 0...1") }
        guard meanLatency >= .zero, grace >= .zero else { throw SimConfigurationError("durations must not be negative") }
        guard handshakeTimeout > .zero, frameTimeout > .zero else { throw SimConfigurationError("timeouts must be positive") }
        guard maxBufferedInboundBytes >= 1 else { throw SimConfigurationError("bounds must be positive") }
        if let disconnectEvery, disconnectEvery <= .zero { throw SimConfigurationError("disconnect interval must be positive") }
        guard resendQueueCapacity >= 1, courierCount >= 1, courierCount <= 64, maxRedispatchAttempts >= 0 else {
            throw SimConfigurationError("resend queue and courier count must be positive (at most 64 couriers)")
        }
        guard roundTripSlop >= .zero, dedupCacheTTL > .zero, redispatchGrace >= .zero, resendQueueFullBackoff > .zero else {
            throw SimConfigurationError("round-trip slop, dedup cache TTL, redispatch grace and backoff must not be negative")
        }
        if let courierChurnInterval, courierChurnInterval <= .zero { throw SimConfigurationError("courier churn interval must be positive") }
        if let boxTTL, boxTTL <= .zero { throw SimConfigurationError("box TTL must be positive") }
        guard mixnetQueueCapacity >= 1, maxBoxes >= 1, maxOperationsPerSession >= 1, maxConnections >= 1, maxSessions >= 1 else {
            throw SimConfigurationError("bounds must be positive")
        }
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let (s, attoseconds) = components
        return Double(s) + Double(attoseconds) * 1e-18
    }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
