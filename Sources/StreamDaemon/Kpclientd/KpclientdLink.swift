import KpclientdSim
import Logging
import PigeonholeTransport
import StreamEngine
import ThinClient

/// streamd's one connection to kpclientd, and the embedded simulator when no real one is set.
///
/// ``run(onChange:)`` connects (retrying with backoff while kpclientd is away), then follows the
/// thin client's events; the thin client itself reconnects and resumes its session after a
/// disconnection. Streams reach Pigeonhole through ``store``.
actor KpclientdLink {
    private let endpoint: KpclientdEndpoint
    private let embedded: EmbeddedConfiguration
    private let scheduler: SchedulerConfiguration
    private let transport: TransportTuning
    private let runtimeDirectory: String
    private let stateDirectory: String
    private let logger: Logger

    private var simulator: KpclientdSimulator?
    private var client: ThinClient?
    /// The Pigeonhole store over the thin client, once connected for the first time.
    private(set) var store: PigeonholeBoxStore?
    /// Whether the local session with kpclientd is up now.
    private(set) var isUp = false
    /// The box size from the last geometry kpclientd sent.
    private(set) var boxSize: Int?
    private var closing = false

    init(
        endpoint: KpclientdEndpoint, embedded: EmbeddedConfiguration, scheduler: SchedulerConfiguration, transport: TransportTuning,
        runtimeDirectory: String, stateDirectory: String, logger: Logger
    ) {
        self.endpoint = endpoint
        self.embedded = embedded
        self.scheduler = scheduler
        self.transport = transport
        self.runtimeDirectory = runtimeDirectory
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    /// A secret-free description of the kpclientd in use.
    nonisolated var endpointDescription: String {
        switch endpoint {
        case .embedded: return "embedded kpclientd-sim"
        case .dial(let address): return address.description
        }
    }

    /// How reads wait for a box that is not written yet.
    ///
    /// On a mixnet (a real kpclientd, or the embedded simulator with a network profile) a read
    /// camped on one envelope can keep getting a courier's cached "not found", so reads poll
    /// with fresh envelopes. The embedded simulator without a profile has no couriers: it
    /// answers a retrying read the moment its box is written. There, polling would only burn
    /// CPU (a created stream's parked reads polled every 20 ms: 0.74 s/s of CPU for 100 idle
    /// streams) and add up to a poll pause to every box's latency, so reads wait in the
    /// simulator and are re-issued every 30 s.
    ///
    /// - Parameter poll: the configured schedule (`[poll]`), for a mixnet.
    static func waitingReads(endpoint: KpclientdEndpoint, embedded: EmbeddedConfiguration, poll: PollSchedule) -> WaitingReadStrategy {
        if case .embedded = endpoint, embedded.profile == nil { return .reissue(every: .seconds(30)) }
        return .poll(poll)
    }

    /// The embedded simulator's counters, or `nil` when streamd uses an external kpclientd.
    func embeddedStatistics() async -> KpclientdSimStatistics? {
        await simulator?.statistics()
    }

    /// Starts the embedded simulator, if configured; fails if it cannot start.
    func startEmbedded() async throws {
        guard case .embedded = endpoint, simulator == nil else { return }
        var configuration = KpclientdSimConfiguration()
        configuration.listen = .unix(path: runtimeDirectory + "/kpclientd-embedded.sock")
        configuration.meanLatency = embedded.latency
        configuration.writeLossProbability = embedded.writeLoss
        configuration.maxPlaintextPayloadLength = embedded.boxSize
        embedded.profile?.apply(to: &configuration)
        configuration.statePath = stateDirectory + "/embedded-pigeonhole.state"
        configuration.maxBoxes = 1_000_000
        configuration.logger = logger
        configuration.logger.logLevel = max(.warning, logger.logLevel)
        simulator = try await KpclientdSimulator.start(configuration)
    }

    /// Connects, retrying with backoff, then follows the connection until ``close()``.
    ///
    /// - Parameter onChange: called with `true` when the session comes up and `false` when it
    ///   goes down.
    func run(onChange: @escaping @Sendable (Bool) async -> Void) async {
        let dial: DialAddress
        switch endpoint {
        case .embedded: dial = .unix(path: runtimeDirectory + "/kpclientd-embedded.sock")
        case .dial(let address): dial = address
        }
        var configuration = ThinClientConfiguration(dial: dial)
        configuration.logger = logger
        configuration.handshakeTimeout = .seconds(30)
        // The daemon's scheduler is the one budget: the client bounds memory by it and paces
        // submissions to kpclientd (λP, its 16-request queue, writes first).
        configuration.maxOutstandingMixnetRequests = scheduler.maxInFlight
        configuration.maxWaitingMixnetRequests = scheduler.maxInFlight
        // Short queues at kpclientd, request deadlines, λP until the PKI document says.
        self.transport.apply(to: &configuration)
        var transport = PigeonholeTransportConfiguration()
        transport.logger = logger
        transport.waitingReads = Self.waitingReads(endpoint: endpoint, embedded: embedded, poll: self.transport.poll)
        var delay = Duration.milliseconds(200)
        while !closing, !Task.isCancelled {
            do {
                let client = try await ThinClient.connect(configuration: configuration)
                if closing {
                    await client.close()
                    return
                }
                self.client = client
                store = PigeonholeBoxStore(client: client, configuration: transport)
                break
            } catch {
                logger.warning("kpclientd at \(endpointDescription) is not reachable; retrying in \(delay)", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
        guard let client, let events = try? await client.events() else { return }
        await connected(client, onChange: onChange)
        for await event in events {
            switch event {
            case .connected:
                await connected(client, onChange: onChange)
            case .disconnected:
                if isUp {
                    isUp = false
                    logger.warning("lost the connection to kpclientd; reconnecting", metadata: ["event": "kpclientd-lost"])
                    await onChange(false)
                }
            case .connectionStatus:
                boxSize = await client.pigeonholeGeometry?.maxPlaintextPayloadLength ?? boxSize
            default:
                break
            }
        }
    }

    private func connected(_ client: ThinClient, onChange: @Sendable (Bool) async -> Void) async {
        if let size = await client.pigeonholeGeometry?.maxPlaintextPayloadLength, size > 0 { boxSize = size }
        guard !isUp, await client.isSessionEstablished else { return }
        isUp = true
        logger.info("connected to kpclientd", metadata: ["kpclientd": "\(endpointDescription)"])
        await onChange(true)
    }

    /// Sends `thin_close`, closes the connection and stops the embedded simulator.
    func close() async {
        closing = true
        isUp = false
        await client?.close()
        await simulator?.shutdown()
        simulator = nil
    }
}
