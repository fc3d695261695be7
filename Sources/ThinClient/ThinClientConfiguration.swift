import Logging

/// Where kpclientd listens: the `[Dial]` table of `thinclient.toml`.
public enum DialAddress: Sendable, Hashable, CustomStringConvertible {
    /// A TCP address (`[Dial.Tcp]`).
    case tcp(host: String, port: Int, network: TCPNetwork)
    /// A Unix domain socket at a filesystem path (`[Dial.Unix] Address = "/path"`).
    case unix(path: String)
    /// A Linux abstract Unix socket (`[Dial.Unix] Address = "@name"`), given without the `@`.
    case abstract(name: String)

    /// Which IP versions a TCP dial may use (`[Dial.Tcp] Network`).
    public enum TCPNetwork: String, Sendable, Hashable, CaseIterable {
        /// IPv4 or IPv6, whichever the host name resolves to.
        case tcp
        /// IPv4 only.
        case tcp4
        /// IPv6 only.
        case tcp6
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port, let network):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "\(network.rawValue)://\(shownHost):\(port)"
        case .unix(let path):
            return "unix:\(path)"
        case .abstract(let name):
            return "unix:@\(name)"
        }
    }

    /// Parses a TCP `"host:port"` address as `thinclient.toml` writes it.
    ///
    /// The port follows the last `:`; square brackets around an IPv6 literal are removed.
    public static func tcp(address: String, network: TCPNetwork = .tcp) throws(ThinClientError) -> DialAddress {
        guard let colon = address.lastIndex(of: ":") else {
            throw ThinClientError(.invalidConfiguration, "TCP address \"\(address)\" has no port (expected host:port)")
        }
        var host = String(address[..<colon])
        let portText = address[address.index(after: colon)...]
        if host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 {
            host = String(host.dropFirst().dropLast())
        }
        guard !host.isEmpty else {
            throw ThinClientError(.invalidConfiguration, "TCP address \"\(address)\" has an empty host")
        }
        guard let port = Int(portText), (1...65535).contains(port) else {
            throw ThinClientError(.invalidConfiguration, "TCP address \"\(address)\" has an invalid port")
        }
        return .tcp(host: host, port: port, network: network)
    }

    /// Parses a `[Dial.Unix] Address`: a filesystem path, or `@name` for an abstract socket.
    public static func unix(address: String) throws(ThinClientError) -> DialAddress {
        if address.hasPrefix("@") {
            let name = String(address.dropFirst())
            guard !name.isEmpty else {
                throw ThinClientError(.invalidConfiguration, "abstract socket address \"@\" has an empty name")
            }
            guard name.utf8.count <= maxUnixPathLength - 1 else {
                throw ThinClientError(.invalidConfiguration, "abstract socket name is longer than \(maxUnixPathLength - 1) bytes")
            }
            return .abstract(name: name)
        }
        guard !address.isEmpty else {
            throw ThinClientError(.invalidConfiguration, "Unix socket address is empty")
        }
        guard address.utf8.count <= maxUnixPathLength - 1 else {
            throw ThinClientError(.invalidConfiguration, "Unix socket path is longer than \(maxUnixPathLength - 1) bytes")
        }
        return .unix(path: address)
    }

    /// The size of `sockaddr_un.sun_path` on Linux.
    static let maxUnixPathLength = 108
}

/// How the client waits between reconnection attempts: exponential backoff.
public struct ReconnectPolicy: Sendable, Hashable {
    /// The delay before the first reconnection attempt.
    public var initialDelay: Duration
    /// The longest delay between two attempts.
    public var maximumDelay: Duration
    /// The factor the delay grows by after each failed attempt.
    public var multiplier: Int

    /// Creates a policy; the defaults are kpclientd's Python client's 1 s doubling up to 60 s.
    public init(initialDelay: Duration = .seconds(1), maximumDelay: Duration = .seconds(60), multiplier: Int = 2) {
        self.initialDelay = initialDelay
        self.maximumDelay = max(maximumDelay, initialDelay)
        self.multiplier = max(1, multiplier)
    }
}

/// Exponential backoff state: 1 s, 2 s, 4 s, … capped at the policy's maximum.
struct Backoff: Sendable {
    let policy: ReconnectPolicy
    private(set) var attempt = 0
    private var current: Duration

    init(policy: ReconnectPolicy) {
        self.policy = policy
        self.current = policy.initialDelay
    }

    /// Returns the delay to wait before the next attempt and grows it for the one after.
    mutating func nextDelay() -> Duration {
        let delay = current
        attempt += 1
        if current < policy.maximumDelay {
            // Duration * Int traps on overflow only far beyond any sane maximum.
            current = min(current * policy.multiplier, policy.maximumDelay)
        }
        return delay
    }

    /// Starts again from the initial delay, after a successful connection.
    mutating func reset() {
        attempt = 0
        current = policy.initialDelay
    }
}

/// Everything a ``ThinClient`` needs: where to dial, timeouts, reconnection and bounds.
public struct ThinClientConfiguration: Sendable {
    /// Where kpclientd listens.
    public var dial: DialAddress
    /// How long a connection may take from `connect` to `session_token_reply`.
    ///
    /// kpclientd may wait up to 30 s for a PKI document before sending its first frame, so
    /// values much below 30 s cause spurious failures. Default: 60 s.
    public var handshakeTimeout: Duration = .seconds(60)
    /// How many frames other than the awaited one the handshake dispatches before giving up.
    ///
    /// A resuming daemon flushes up to 1000 queued replies before `session_token_reply`.
    public var handshakeFrameLimit: Int = 2048
    /// How long to wait between reconnection attempts.
    public var reconnect: ReconnectPolicy = ReconnectPolicy()
    /// How many mixnet-path requests (`send_message`, `start_resending_*`) may be unanswered at
    /// once: a memory bound, not kpclientd's limit (ARQs in flight are unbounded there).
    ///
    /// Submissions are paced separately, see ``daemonQueueCapacity``. Default: 4096.
    public var maxOutstandingMixnetRequests: Int = 4096
    /// How many mixnet-path requests may be queued at kpclientd and not yet sent.
    ///
    /// kpclientd queues 16 requests per connection (`perClientRequestBuf`), sends one per
    /// Poisson tick of rate λP (its own resends first) and stops reading the socket while the
    /// queue is full, which would also stall local requests. The client models that queue, using
    /// λP from the PKI document, and submits only while it has room. Default: 16.
    public var daemonQueueCapacity: Int = 16
    /// The longest a request should wait in kpclientd's queue for its send tick; `nil` (the
    /// default) fills the queue up to ``daemonQueueCapacity``.
    ///
    /// When set, the client queues at kpclientd at most the requests λP sends in this time (at
    /// least one, at most ``daemonQueueCapacity``), re-sized with every PKI document. Requests
    /// beyond wait in the client, where writes go before reads and no deadline runs yet (a
    /// deadline counts from submission), instead of ageing in kpclientd's FIFO.
    public var maxDaemonQueueDelay: Duration?
    /// λP (send ticks per millisecond) assumed while the daemon has sent no PKI document, or
    /// one without `LambdaP`. Default: 0.00025, the Katzenpost default (one tick every 4 s).
    public var fallbackLambdaP: Double = 0.00025
    /// The deadline of `start_resending_encrypted_message` requests; `nil` disables it.
    ///
    /// When it passes, the request is cancelled at the daemon and fails with
    /// ``ThinClientError/Code-swift.struct/timeout``, so that the caller re-encrypts.
    public var operationDeadline: DeadlinePolicy? = DeadlinePolicy()
    /// How many mixnet-path requests may wait, in priority then FIFO order, for admission;
    /// beyond that requests fail at once with ``ThinClientError/Code-swift.struct/tooManyPendingRequests``.
    public var maxWaitingMixnetRequests: Int = 1024
    /// How many local requests (everything but the mixnet path) may await their replies at once.
    public var maxPendingLocalRequests: Int = 256
    /// How long a local request waits for its reply. `nil` waits until the connection drops.
    public var localRequestTimeout: Duration? = .seconds(120)
    /// How long ``ThinClient/sendMessage(destination:queueID:payload:timeout:)`` waits for
    /// the SURB reply unless told otherwise.
    public var messageReplyTimeout: Duration = .seconds(30)
    /// How many events each ``ThinClient/events()`` subscriber buffers; the oldest are dropped
    /// when a subscriber falls further behind.
    public var eventBufferSize: Int = 256
    /// How many subscribers ``ThinClient/events()`` accepts at once.
    public var maxEventSubscribers: Int = 64
    /// Where the client logs. Secrets are never logged.
    public var logger: Logger = Logger(label: "streamd.thinclient")

    /// Creates a configuration with default timeouts and bounds.
    public init(dial: DialAddress) {
        self.dial = dial
    }

    /// Checks that every bound is positive.
    func validated() throws(ThinClientError) -> ThinClientConfiguration {
        func positive(_ value: Int, _ name: String) throws(ThinClientError) {
            guard value > 0 else { throw ThinClientError(.invalidConfiguration, "\(name) must be positive") }
        }
        try positive(handshakeFrameLimit, "handshakeFrameLimit")
        try positive(maxOutstandingMixnetRequests, "maxOutstandingMixnetRequests")
        try positive(daemonQueueCapacity, "daemonQueueCapacity")
        if let maxDaemonQueueDelay, maxDaemonQueueDelay <= .zero {
            throw ThinClientError(.invalidConfiguration, "maxDaemonQueueDelay must be positive")
        }
        guard fallbackLambdaP.isFinite, fallbackLambdaP > 0 else {
            throw ThinClientError(.invalidConfiguration, "fallbackLambdaP must be a positive number of ticks per millisecond")
        }
        try positive(maxPendingLocalRequests, "maxPendingLocalRequests")
        try positive(eventBufferSize, "eventBufferSize")
        try positive(maxEventSubscribers, "maxEventSubscribers")
        guard maxWaitingMixnetRequests >= 0 else {
            throw ThinClientError(.invalidConfiguration, "maxWaitingMixnetRequests must not be negative")
        }
        guard handshakeTimeout > .zero, reconnect.initialDelay >= .zero else {
            throw ThinClientError(.invalidConfiguration, "timeouts must be positive")
        }
        return self
    }
}
