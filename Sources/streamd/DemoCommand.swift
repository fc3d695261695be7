import ArgumentParser
import KpclientdSim
import Logging
import PigeonholeTransport
import StreamEngine
import StreamEngineTesting
import ThinClient

/// `streamd demo`: two streams exchange data over a lossy, simulated box store.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run two streams that exchange data over a lossy simulated Pigeonhole store.")

    @Option(help: "Probability (0...0.9) that a box write is acknowledged but never stored, and that a read fails.")
    var loss = 0.2

    @Option(help: "Bytes each side sends.")
    var bytes = 100_000

    @Option(help: "Mean store latency per operation, e.g. 20ms, 1.5s, 0 (exponentially distributed; at most 10s).")
    var latency: String?

    @Option(help: "The same in milliseconds (older spelling of --latency; 0...10000).")
    var latencyMs: Int?

    /// The mean latency from `--latency` or `--latency-ms` (default 20 ms).
    func meanLatency() throws -> Duration {
        if latency != nil && latencyMs != nil { throw ValidationError("give --latency or --latency-ms, not both") }
        if let latencyMs {
            guard (0...10_000).contains(latencyMs) else { throw ValidationError("--latency-ms must be between 0 and 10000") }
            return .milliseconds(latencyMs)
        }
        guard let latency else { return .milliseconds(20) }
        let value: Duration
        do { value = try KpclientdSimConfiguration.parseDuration(latency) } catch { throw ValidationError("--latency: \(error.message)") }
        guard value <= .seconds(10) else { throw ValidationError("--latency must be at most 10s") }
        return value
    }

    @Option(help: "Box size in bytes (Pigeonhole's default geometry holds 1549).")
    var boxSize = 1549

    /// Which box store the demo runs on.
    enum Transport: String, ExpressibleByArgument, CaseIterable {
        /// `InMemoryBoxStore`, in process.
        case memory
        /// kpclientd-sim in process, reached over TCP by two thin clients through PigeonholeTransport.
        case kpclientdSim = "kpclientd-sim"
    }

    @Option(help: "memory: an in-process store; kpclientd-sim: the full stack (thin clients over TCP to an embedded kpclientd-sim).")
    var transport: Transport = .memory

    func validate() throws {
        guard (0...0.9).contains(loss) else { throw ValidationError("--loss must be between 0 and 0.9") }
        guard (0...100_000_000).contains(bytes) else { throw ValidationError("--bytes must be between 0 and 100000000") }
        let latency = try meanLatency()
        do { try StreamConfiguration.demo(meanLatency: latency).validate() } catch { throw ValidationError("latency \(latency): \(error)") }
        guard (256...65_536).contains(boxSize) else { throw ValidationError("--box-size must be between 256 and 65536") }
    }

    func run() async throws {
        switch transport {
        case .memory:
            var storeConfiguration = InMemoryBoxStore.Configuration()
            storeConfiguration.payloadSize = boxSize
            storeConfiguration.writeLoss = loss
            storeConfiguration.readLoss = loss
            storeConfiguration.meanLatency = try meanLatency()
            storeConfiguration.waitTimeout = max(.seconds(2), try meanLatency() * 4)
            storeConfiguration.seed = UInt64.random(in: 1 ... .max)
            let store = InMemoryBoxStore(configuration: storeConfiguration)
            try await exchange(aliceStore: store, bobStore: store, describe: "an in-memory store losing \(Int(loss * 100)) % of writes and reads")
            let statistics = await store.statistics()
            print("  store: \(statistics.writes) box writes (\(statistics.lostWrites) lost), \(statistics.reads) reads, \(statistics.conflictingWrites) conflicting writes")
        case .kpclientdSim:
            var simConfiguration = KpclientdSimConfiguration()
            simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
            simConfiguration.meanLatency = try meanLatency()
            simConfiguration.writeLossProbability = loss
            simConfiguration.maxPlaintextPayloadLength = boxSize
            simConfiguration.logger.logLevel = .warning
            let sim = try await KpclientdSimulator.start(simConfiguration)
            guard case .tcp(let host, let port) = sim.listenAddress else { throw ExitCode.failure }
            var clientConfiguration = ThinClientConfiguration(dial: .tcp(host: host, port: port, network: .tcp))
            clientConfiguration.logger.logLevel = .warning
            let aliceClient = try await ThinClient.connect(configuration: clientConfiguration)
            let bobClient = try await ThinClient.connect(configuration: clientConfiguration)
            try await exchange(
                aliceStore: PigeonholeBoxStore(client: aliceClient), bobStore: PigeonholeBoxStore(client: bobClient),
                describe: "kpclientd-sim at \(host):\(port) (two thin clients, \(Int(loss * 100)) % write loss)")
            await aliceClient.close()
            await bobClient.close()
            await sim.shutdown()
        }
    }

    private func exchange(aliceStore: any BoxStore, bobStore: any BoxStore, describe: String) async throws {

        let latency = try meanLatency()
        let configuration = StreamConfiguration.demo(meanLatency: latency)

        let address = StreamAddress.generate()
        print("streamd demo: \(bytes) bytes each way over \(describe), ~\(latency) mean latency, \(boxSize)-byte boxes")
        let clock = ContinuousClock()
        let start = clock.now
        let alice = try await Stream.listen(address: address, store: aliceStore, configuration: configuration)
        let bob = try await Stream.dial(address: address, store: bobStore, configuration: configuration)
        let fromAlice = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let fromBob = (0..<bytes).map { UInt8(truncatingIfNeeded: $0 &* 17 &+ 3) }

        async let bobGot = Self.receiveAll(bob, name: "bob")
        async let aliceGot = Self.receiveAll(alice, name: "alice")
        async let aliceSent: Void = Self.send(fromAlice, on: alice)
        async let bobSent: Void = Self.send(fromBob, on: bob)
        try await aliceSent
        try await bobSent
        let (bobReceived, aliceReceived) = try await (bobGot, aliceGot)
        let elapsed = clock.now - start

        let ok = bobReceived == fromAlice && aliceReceived == fromBob
        print("  alice → bob: \(bobReceived.count) bytes, \(bobReceived == fromAlice ? "identical" : "DIFFERENT")")
        print("  bob → alice: \(aliceReceived.count) bytes, \(aliceReceived == fromBob ? "identical" : "DIFFERENT")")
        let millis = elapsed.nanosecondsClamped / 1_000_000
        let goodput = Double(2 * bytes) / max(0.001, Double(millis) / 1000) / 1024
        print("  both directions closed after \(millis) ms (\(Int(goodput)) KiB/s goodput, both ways together)")
        if !ok { throw ExitCode.failure }
    }

    static func send(_ data: [UInt8], on stream: StreamEngine.Stream) async throws {
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + 16_384)
            try await stream.write(Array(data[offset..<end]))
            offset = end
        }
        try await stream.close()  // returns once the peer acknowledged everything
    }

    static func receiveAll(_ stream: StreamEngine.Stream, name: String) async throws -> [UInt8] {
        var received: [UInt8] = []
        for try await chunk in stream.chunks { received += chunk }
        return received
    }
}
