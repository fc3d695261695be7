import KpclientdSim
import Logging
import Testing
import ThinClient

/// Starts an in-process kpclientd simulator and connects thin clients to it.
struct SimHarness {
    enum Transport: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case tcp, unix, abstract
        var testDescription: String { rawValue }
    }

    let sim: KpclientdSimulator

    static func start(
        _ transport: Transport = .tcp, configure: (inout KpclientdSimConfiguration) -> Void = { _ in }
    ) async throws -> SimHarness {
        var configuration = KpclientdSimConfiguration()
        let name = "streamd-thin-\(UInt32.random(in: 0 ... .max))"
        switch transport {
        case .tcp: configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        case .unix: configuration.listen = .unix(path: "/tmp/\(name).sock")
        case .abstract: configuration.listen = .abstract(name: name)
        }
        configuration.logger.logLevel = .error
        configure(&configuration)
        return SimHarness(sim: try await KpclientdSimulator.start(configuration))
    }

    /// The simulator's address as a thin-client dial address.
    var dialAddress: DialAddress {
        switch sim.listenAddress {
        case .tcp(let host, let port): return .tcp(host: host, port: port, network: .tcp)
        case .unix(let path): return .unix(path: path)
        case .abstract(let name): return .abstract(name: name)
        }
    }

    /// A client configuration with fast reconnects and quiet logs.
    func clientConfiguration(_ configure: (inout ThinClientConfiguration) -> Void = { _ in }) -> ThinClientConfiguration {
        var configuration = ThinClientConfiguration(dial: dialAddress)
        configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(250))
        configuration.handshakeTimeout = .seconds(20)
        configuration.logger.logLevel = .error
        configure(&configuration)
        return configuration
    }

    func client(_ configure: (inout ThinClientConfiguration) -> Void = { _ in }) async throws -> ThinClient {
        try await ThinClient.connect(configuration: clientConfiguration(configure))
    }

    func stop() async {
        await sim.shutdown()
    }
}

/// Waits for the first event matching `predicate`.
func waitForEvent(_ events: AsyncStream<ThinClientEvent>, _ predicate: (ThinClientEvent) -> Bool) async -> ThinClientEvent? {
    for await event in events where predicate(event) {
        return event
    }
    return nil
}

/// Deterministic test bytes.
func testBytes(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}
