import KpclientdSim
import Logging
import StreamEngine
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

        let address = StreamAddress.generate(mode: .endToEnd)
        async let listening = Stream.listen(address: address, store: listenerStore, configuration: configuration)
        let dialer = try await Stream.dial(address: address, store: dialerStore, configuration: configuration)
        let listener = try await listening

        // Workaround: a fresh StreamMachine schedules no reads until its first app call (see the
        // report), so the listener greets first, which starts its read window.
        try await listener.write(Array("hello".utf8))

        var generator = SplitMix(seed: 42)
        let data = (0..<(1 << 20)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let sender = Task {
            try await dialer.write(data)
            try await dialer.sync()
            try await dialer.close()
        }
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        while let chunk = try await listener.read() {
            received += chunk
        }
        try await sender.value
        #expect(received.count == data.count)
        #expect(received == data)

        // The reverse direction carried the greeting and carries more.
        try await listener.write(Array("ack".utf8))
        try await listener.close()
        var reply: [UInt8] = []
        while let chunk = try await dialer.read() { reply += chunk }
        #expect(reply == Array("helloack".utf8))

        await listenerClient.close()
        await dialerClient.close()
        await sim.shutdown()
    }
}

extension StreamOverPigeonholeTests {
    /// The plain pattern: the listener only reads. Enable once a fresh `Stream` starts its read
    /// window by itself (today `StreamMachine.init` does not call `advance(now:)`, and
    /// `Stream.read()` never drives the machine while nothing is readable, so the listener
    /// issues no reads and the transfer hangs).
    @Test(.disabled("StreamEngine: a fresh listener issues no reads until its first app call"))
    func aListenerThatOnlyReadsReceivesData() async throws {
        var simConfiguration = KpclientdSimConfiguration()
        simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
        simConfiguration.logger.logLevel = .error
        let sim = try await KpclientdSimulator.start(simConfiguration)
        guard case .tcp(let host, let port) = sim.listenAddress else { fatalError("TCP expected") }
        let dial = DialAddress.tcp(host: host, port: port, network: .tcp)
        let listenerClient = try await PigeonholeHarness.makeClient(dial) { _ in }
        let dialerClient = try await PigeonholeHarness.makeClient(dial) { _ in }
        let address = StreamAddress.generate(mode: .endToEnd)
        async let listening = Stream.listen(address: address, store: PigeonholeBoxStore(client: listenerClient))
        let dialer = try await Stream.dial(address: address, store: PigeonholeBoxStore(client: dialerClient))
        let listener = try await listening
        let data = [UInt8](repeating: 0x5A, count: 64 * 1024)
        let sender = Task {
            try await dialer.write(data)
            try await dialer.close()
        }
        var received: [UInt8] = []
        while let chunk = try await listener.read() { received += chunk }
        try await sender.value
        #expect(received == data)
        await listenerClient.close()
        await dialerClient.close()
        await sim.shutdown()
    }
}

/// A small deterministic generator for test data.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
