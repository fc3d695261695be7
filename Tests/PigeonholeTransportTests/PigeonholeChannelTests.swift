import KpclientdSim
import Logging
import StreamEngine
import Testing

@testable import ThinClient

@testable import PigeonholeTransport

/// Starts a simulator and a connected thin client.
struct PigeonholeHarness {
    let sim: KpclientdSimulator
    let client: ThinClient
    let store: PigeonholeBoxStore

    static func start(
        configureSim: (inout KpclientdSimConfiguration) -> Void = { _ in },
        configureClient: (inout ThinClientConfiguration) -> Void = { _ in },
        transport: PigeonholeTransportConfiguration = PigeonholeTransportConfiguration()
    ) async throws -> PigeonholeHarness {
        var simConfiguration = KpclientdSimConfiguration()
        simConfiguration.listen = .tcp(host: "127.0.0.1", port: 0)
        simConfiguration.logger.logLevel = .error
        configureSim(&simConfiguration)
        let sim = try await KpclientdSimulator.start(simConfiguration)
        guard case .tcp(let host, let port) = sim.listenAddress else { fatalError("TCP expected") }
        let client = try await makeClient(.tcp(host: host, port: port, network: .tcp), configureClient)
        return PigeonholeHarness(sim: sim, client: client, store: PigeonholeBoxStore(client: client, configuration: transport))
    }

    static func makeClient(_ dial: DialAddress, _ configure: (inout ThinClientConfiguration) -> Void) async throws -> ThinClient {
        var configuration = ThinClientConfiguration(dial: dial)
        configuration.reconnect = ReconnectPolicy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(250))
        configuration.logger.logLevel = .error
        configure(&configuration)
        return try await ThinClient.connect(configuration: configuration)
    }

    /// Another client of the same simulator.
    func secondClient(_ configure: (inout ThinClientConfiguration) -> Void = { _ in }) async throws -> ThinClient {
        guard case .tcp(let host, let port) = sim.listenAddress else { fatalError("TCP expected") }
        return try await Self.makeClient(.tcp(host: host, port: port, network: .tcp), configure)
    }

    func stop() async {
        await client.close()
        await sim.shutdown()
    }
}

func seed(_ n: UInt8) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: Int($0) * 7 + Int(n)) } }

func box(_ size: Int, _ n: UInt8) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: $0 ^ Int(n)) } }

func expectBoxError(_ code: BoxTransportError.Code, _ body: () async throws -> Void) async {
    await #expect {
        try await body()
    } throws: { error in
        (error as? BoxTransportError)?.code == code
    }
}

@Suite("Pigeonhole box channels against kpclientd-sim", .timeLimit(.minutes(2)))
struct PigeonholeChannelTests {
    @Test func payloadSizeIsTheDaemonsMaxPlaintextPayloadLength() async throws {
        let harness = try await PigeonholeHarness.start { $0.maxPlaintextPayloadLength = 1000 }
        #expect(try await harness.store.payloadSize() == 1000)
        let channel = try await harness.store.channel(.writerSeed(seed(1)))
        #expect(channel.payloadSize == 1000)
        await harness.stop()
    }

    @Test func writeReadPollAndAlreadyExists() async throws {
        let harness = try await PigeonholeHarness.start()
        let channel = try await harness.store.channel(.writerSeed(seed(2)))
        let size = channel.payloadSize
        #expect(try await channel.read(index: 0, mode: .poll) == nil, "an empty box polls as nil")
        try await channel.write(index: 0, bytes: box(size, 1))
        #expect(try await channel.read(index: 0, mode: .poll) == box(size, 1))
        #expect(try await channel.read(index: 0, mode: .wait) == box(size, 1))
        try await channel.write(index: 0, bytes: box(size, 1))  // identical rewrite succeeds
        await expectBoxError(.alreadyExists) { try await channel.write(index: 0, bytes: box(size, 2)) }
        await expectBoxError(.invalidPayloadSize) { try await channel.write(index: 1, bytes: [1, 2, 3]) }
        // Boxes far from the last one are reached through the index cache.
        try await channel.write(index: 300, bytes: box(size, 3))
        #expect(try await channel.read(index: 300, mode: .poll) == box(size, 3))
        #expect(try await channel.read(index: 299, mode: .poll) == nil)
        await harness.stop()
    }

    @Test func readLocatorOpensAReadOnlyChannel() async throws {
        let harness = try await PigeonholeHarness.start()
        let writer = try await harness.store.channel(.writerSeed(seed(3)))
        let locator = try await harness.store.readLocator(forWriterSeed: seed(3))
        #expect(locator.count == 136)
        #expect(locator == (writer as? PigeonholeBoxChannel)?.readLocator)
        // A second client (another application) reads through the locator.
        let otherClient = try await harness.secondClient()
        let reader = try await PigeonholeBoxStore(client: otherClient).channel(.readLocator(locator))
        let size = writer.payloadSize
        try await writer.write(index: 4, bytes: box(size, 4))
        #expect(try await reader.read(index: 4, mode: .poll) == box(size, 4))
        await expectBoxError(.permissionDenied) { try await reader.write(index: 5, bytes: box(size, 5)) }
        await expectBoxError(.permissionDenied) { _ = try await harness.store.channel(.readLocator([1, 2, 3])) }
        await expectBoxError(.permissionDenied) { _ = try await harness.store.channel(.writerSeed([1])) }
        await otherClient.close()
        await harness.stop()
    }

    @Test func aWaitingReadLeftToTheDaemonCompletesWhenTheBoxIsWrittenAndCanBeCancelled() async throws {
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .reissue(every: .seconds(30))
        let harness = try await PigeonholeHarness.start(configureSim: { $0.meanLatency = .milliseconds(2) }, transport: transport)
        let writer = try await harness.store.channel(.writerSeed(seed(6)))
        let otherClient = try await harness.secondClient()
        let reader = try await PigeonholeBoxStore(client: otherClient, configuration: transport).channel(
            .readLocator(try await harness.store.readLocator(forWriterSeed: seed(6)))
        )
        let size = writer.payloadSize
        let waiting = Task { try await reader.read(index: 2, mode: .wait) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        try await writer.write(index: 2, bytes: box(size, 6))
        #expect(try await waiting.value == box(size, 6))
        // Cancelling a waiting read cancels it at the daemon.
        let cancelled = Task { try await reader.read(index: 3, mode: .wait) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        cancelled.cancel()
        await expectBoxError(.cancelled) { _ = try await cancelled.value }
        while await harness.sim.statistics().inFlightOperations > 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await otherClient.outstandingMixnetRequests == 0)
        await otherClient.close()
        await harness.stop()
    }

    @Test func aPollingWaitingReadCompletesWhenTheBoxIsWrittenAndCanBeCancelled() async throws {
        let harness = try await PigeonholeHarness.start { $0.meanLatency = .milliseconds(2) }
        let writer = try await harness.store.channel(.writerSeed(seed(8)))
        let size = writer.payloadSize
        let waiting = Task { try await writer.read(index: 0, mode: .wait) }
        try await Task.sleep(for: .milliseconds(100))
        // The read polls: nothing waits at the daemon between polls.
        #expect(await harness.sim.statistics().blockedReads == 0)
        try await writer.write(index: 0, bytes: box(size, 8))
        #expect(try await waiting.value == box(size, 8))
        let cancelled = Task { try await writer.read(index: 1, mode: .wait) }
        try await Task.sleep(for: .milliseconds(50))
        cancelled.cancel()
        await expectBoxError(.cancelled) { _ = try await cancelled.value }
        while await harness.sim.statistics().inFlightOperations > 0 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await harness.client.outstandingMixnetRequests == 0)
        await harness.stop()
    }

    @Test func waitingReadsNeverStarveWrites() async throws {
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .reissue(every: .seconds(30))
        // The simulator publishes λP = 1 tick/s (and releases first sends at that rate).
        let harness = try await PigeonholeHarness.start(
            configureSim: { $0.rate = 1 }, configureClient: { $0.daemonQueueCapacity = 3 }, transport: transport)
        let channel = try await harness.store.channel(.writerSeed(seed(10)))
        let size = channel.payloadSize
        // Six waiting reads: three fill the daemon's queue (as the client models it), three wait.
        let reads = (0..<6).map { n in Task { try await channel.read(index: UInt64(n), mode: .wait) } }
        while await harness.client.outstandingMixnetRequests + harness.client.waitingMixnetRequests < 6 {
            try await Task.sleep(for: .milliseconds(5))
        }
        // The model drains one per tick of λP (1/s here): at most one more got through meanwhile.
        #expect(await harness.client.unsentMixnetRequests <= 3)
        #expect(await harness.client.waitingMixnetRequests >= 2)
        // Writes go before the waiting reads, and fill the boxes they wait for.
        for n in 0..<6 { try await channel.write(index: UInt64(n), bytes: box(size, UInt8(n))) }
        for (n, read) in reads.enumerated() { #expect(try await read.value == box(size, UInt8(n))) }
        #expect(await harness.client.outstandingMixnetRequests == 0)
        await harness.stop()
    }

    @Test func aTombstonedBoxIsAnError() async throws {
        let harness = try await PigeonholeHarness.start()
        let channel = try await harness.store.pigeonholeChannel(.writerSeed(seed(7)))
        try await channel.write(index: 0, bytes: box(channel.payloadSize, 7))
        let keys = try await harness.client.newKeypair(seed: seed(7))
        let tombstone = try await harness.client.encryptWrite(plaintext: [], writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
        _ = try await harness.client.startResendingEncryptedMessage(.write(tombstone, writeCapability: keys.writeCapability))
        await #expect {
            _ = try await channel.read(index: 0, mode: .poll)
        } throws: { error in
            let error = error as? BoxTransportError
            return error?.code == .deleted && error?.message.contains("tombstone") == true
        }
        await harness.stop()
    }

    @Test func indexSnapshotsRestoreAndRejectForeignEntries() async throws {
        let harness = try await PigeonholeHarness.start()
        var settings = PigeonholeTransportConfiguration()
        settings.indexAnchorInterval = 8
        let store = PigeonholeBoxStore(client: harness.client, configuration: settings)
        let channel = try await store.pigeonholeChannel(.writerSeed(seed(8)))
        let size = channel.payloadSize
        try await channel.write(index: 40, bytes: box(size, 40))
        let snapshot = await channel.indexSnapshot()
        #expect(snapshot.anchors.keys.contains(8))
        #expect(snapshot.anchors.keys.contains(40))
        #expect(snapshot.anchors.values.allSatisfy { $0.count == 104 })
        // A fresh channel restored from the snapshot reaches box 40 without stepping.
        let restored = try await store.pigeonholeChannel(.writerSeed(seed(8)), indexSnapshot: snapshot)
        let framesBefore = await harness.sim.statistics().framesReceived
        #expect(try await restored.read(index: 40, mode: .poll) == box(size, 40))
        let framesAfter = await harness.sim.statistics().framesReceived
        #expect(framesAfter - framesBefore == 2, "encrypt_read and start_resending only, no next_message_box_index")
        // Box 44 is four steps past the cached box 41 (the successor learnt from encrypt_read).
        #expect(try await restored.read(index: 44, mode: .poll) == nil)
        #expect(await harness.sim.statistics().framesReceived - framesAfter == 2 + 3)
        // The snapshot of another channel is refused.
        let other = try await store.pigeonholeChannel(.writerSeed(seed(9)))
        await expectBoxError(.failed) { try await other.restoreIndexes(snapshot) }
        await harness.stop()
    }

    @Test func concurrentLookupsAskForEachIndexOnce() async throws {
        let harness = try await PigeonholeHarness.start()
        let channel = try await harness.store.pigeonholeChannel(.writerSeed(seed(12)))
        let before = await harness.sim.statistics().requestsByKind["next_message_box_index"] ?? 0
        // Sixteen lookups at once, as a read-ahead of sixteen boxes makes them: each walks from
        // box 0, and alone they would ask 1 + 2 + … + 16 = 136 steps.
        let indexes = try await withThrowingTaskGroup(of: (UInt64, [UInt8]).self) { group in
            for number in UInt64(1)...16 {
                group.addTask { (number, try await channel.messageBoxIndex(of: number).bytes) }
            }
            return try await group.reduce(into: [UInt64: [UInt8]]()) { $0[$1.0] = $1.1 }
        }
        let steps = (await harness.sim.statistics().requestsByKind["next_message_box_index"] ?? 0) - before
        #expect(steps == 16)
        #expect(Set(indexes.values).count == 16)
        // The same indexes as one walk on a channel of its own.
        let alone = try await harness.store.pigeonholeChannel(.writerSeed(seed(12)))
        for number in UInt64(1)...16 {
            #expect(try await alone.messageBoxIndex(of: number).bytes == indexes[number])
        }
        await harness.stop()
    }

    @Test func theIndexCacheStaysBoundedAndCoversHistory() throws {
        var firstBytes = [UInt8](repeating: 0, count: 104)
        firstBytes[0] = 10
        let first = try MessageBoxIndex(bytes: firstBytes)
        var cache = BoxIndexCache(first: first, interval: 4, maxAnchors: 8, maxRecent: 4)
        func index(_ n: UInt64) throws -> MessageBoxIndex {
            var bytes = [UInt8](repeating: 0, count: 104)
            let counter = 10 + n
            for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
            return try MessageBoxIndex(bytes: bytes)
        }
        for n in UInt64(1)...200 { cache.insert(n, try index(n)) }
        #expect(cache.interval > 4, "the anchor interval grew instead of forgetting history")
        #expect(cache.snapshot.anchors.count <= 9)
        #expect(cache.exact(200) == (try index(200)))
        #expect(cache.exact(0) == first)
        let closest = cache.closest(atOrBelow: 37)
        #expect(closest.number <= 37 && 37 - closest.number < cache.interval)
        #expect(cache.isConsistent(37, try index(37)))
        #expect(!cache.isConsistent(38, try index(37)))
    }

    @Test func theClosestCachedIndexIsTheHighestAtOrBelow() throws {
        let first = try MessageBoxIndex(bytes: [UInt8](repeating: 0, count: 104))
        var cache = BoxIndexCache(first: first, interval: 16, maxAnchors: 8, maxRecent: 32)
        var random = SystemRandomNumberGenerator()
        func brute(_ number: UInt64) -> UInt64 {
            var key = number
            while cache.exact(key) == nil { key -= 1 }
            return key
        }
        for round in 0..<2_000 {
            // Sparse inserts, near the frontier and far behind it, as reads and writes make them.
            let number = round % 3 == 0 ? UInt64.random(in: 1...20_000, using: &random) : UInt64(round) * 7
            cache.insert(number, first)
            for query in [number, number + 1, number + 63, number + 64, number + 65, number + 500, UInt64.random(in: 0...25_000, using: &random)] {
                #expect(cache.closest(atOrBelow: query).number == brute(query), "query \(query)")
            }
        }
    }

    @Test func errorsMapToBoxTransportCodes() {
        let map = { (error: ThinClientError) in BoxTransportError(error, operation: "op").code }
        #expect(map(.replica(code: 10, context: "x")!) == .alreadyExists)
        #expect(map(ThinClientError(.notConnected, "x")) == .unavailable)
        #expect(map(ThinClientError(.connectionLost, "x")) == .unavailable)
        #expect(map(ThinClientError(.cancelled, "x")) == .cancelled)
        #expect(map(.thinClient(code: 24, context: "x")!) == .cancelled)
        #expect(map(ThinClientError(.timeout, "x")) == .timeout)
        #expect(map(.thinClient(code: 14, context: "x")!) == .permissionDenied)
        #expect(map(.replica(code: 6, context: "x")!) == .failed)
        #expect(BoxTransportError(ThinClientError(.notConnected, "x"), operation: "op").isTransient)
    }
}
