import KpclientdSim
import Logging
import StreamEngine
import StreamEngineTesting
import Testing

@testable import PigeonholeTransport
@testable import ThinClient

@Suite("StreamEngine streams over Pigeonhole through kpclientd-sim", .timeLimit(.minutes(5)))
struct StreamOverPigeonholeTests {
    @Test func oneMebibyteArrivesByteIdentical() async throws {
        var simConfiguration = KpclientdSimConfiguration()
        simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
        simConfiguration.meanLatency = .milliseconds(10)
        simConfiguration.writeLossProbability = 0.1
        simConfiguration.seed = 20_261_122
        simConfiguration.logger.logLevel = .error
        let sim = try await KpclientdSimulator.start(simConfiguration)
        guard case .tcp(let host, let port) = sim.listenAddress else { fatalError("TCP expected") }
        let dial = DialAddress.tcp(host: host, port: port, network: .tcp)
        // Two applications, each with its own thin client connection to the same daemon.
        let listenerClient = try await PigeonholeHarness.makeClient(dial) { _ in }
        let dialerClient = try await PigeonholeHarness.makeClient(dial) { _ in }
        let listenerStore = PigeonholeBoxStore(client: listenerClient)
        let dialerStore = PigeonholeBoxStore(client: dialerClient)

        var configuration = StreamConfiguration()
        configuration.initialRetransmitTimeout = .seconds(1)
        configuration.minRetransmitTimeout = .milliseconds(200)
        configuration.maxRetransmitTimeout = .seconds(5)

        let pair = try await StreamPair.open(listenerStore: listenerStore, dialerStore: dialerStore, configuration: configuration)
        let (listener, dialer) = (pair.listener, pair.dialer)

        // The listener only reads: its read window starts by itself.
        let data = StreamPair.data(count: 1 << 20, seed: 42)
        let received = try await pair.sendFromDialer(data)
        #expect(received.count == data.count)
        #expect(received == data)

        // The reverse direction is still open after the dialer's half-close.
        try await listener.write(Array("ack".utf8))
        try await listener.close()
        var reply: [UInt8] = []
        while let chunk = try await dialer.read() { reply += chunk }
        #expect(reply == Array("ack".utf8))

        await listenerClient.close()
        await dialerClient.close()
        await sim.shutdown()
    }
}
