import Foundation
import KpclientdSim
import Logging
import Synchronization
import Testing
import ThinWire

#if canImport(Glibc)
import Glibc
#endif

/// A log handler keeping every message, to check what the simulator logs.
struct CapturingLogHandler: LogHandler {
    final class Store: Sendable {
        let messages = Mutex<[String]>([])
        func contains(_ text: String) -> Bool { messages.withLock { $0.contains { $0.contains(text) } } }
    }

    let store: Store
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let fields = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
        store.messages.withLock { $0.append("\(event.level) \(event.message) \(fields)") }
    }
}

/// One local client must not be able to exhaust the simulator: idle and stalled connections are
/// closed, connections are bounded (refusals logged), partial frames are bounded in memory.
@Suite(.timeLimit(.minutes(2)))
struct ConnectionGuardTests {
    static func configuration(_ store: CapturingLogHandler.Store) -> KpclientdSimConfiguration {
        var configuration = TestSupport.configuration()
        configuration.logger = Logger(label: "kpclientd-sim-test") { _ in CapturingLogHandler(store: store) }
        configuration.logger.logLevel = .debug
        return configuration
    }

    @Test func idleConnectionsDoNotLockOutANormalClient() async throws {
        let store = CapturingLogHandler.Store()
        var configuration = Self.configuration(store)
        configuration.handshakeTimeout = .seconds(2)
        try await TestSupport.withSimulator(configuration) { sim in
            // 300 connections that never send a byte: 256 fill the table, the rest are refused.
            var idle: [RawClient] = []
            for _ in 0..<300 { idle.append(try RawClient(sim.listenAddress)) }
            try await TestSupport.eventually("the refusals") { await sim.statistics().refusedConnections >= 44 }
            #expect(store.contains("connection refused"))
            #expect(store.contains("at the limit of 256 connections"))
            // The handshake timeout frees the table; a normal client then gets in and is served.
            try await TestSupport.eventually("the idle connections to be closed", timeout: .seconds(30)) {
                await sim.statistics().connections == 0
            }
            #expect(await sim.statistics().guardClosedConnections >= 256)
            try await TestSupport.eventually("the timeout in the log") { store.contains("no complete frame within the handshake timeout") }
            let client = try RawClient(sim.listenAddress)
            try await client.handshake(token: TestSupport.random(16))
            _ = try await Stream(client)
            withExtendedLifetime(idle) {}
        }
    }

    @Test func aClientThatCompletesItsHandshakeIsNotTimedOut() async throws {
        var configuration = TestSupport.configuration()
        configuration.handshakeTimeout = .seconds(2)
        configuration.frameTimeout = .seconds(2)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake(token: TestSupport.random(16))
            try await Task.sleep(for: .seconds(5))
            _ = try await Stream(client)
            #expect(await sim.statistics().guardClosedConnections == 0)
        }
    }

    @Test func aFrameLeftIncompleteIsTimedOut() async throws {
        let store = CapturingLogHandler.Store()
        var configuration = Self.configuration(store)
        configuration.frameTimeout = .seconds(1)
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake(token: TestSupport.random(16))
            // A prefix announcing 1000 bytes, and 10 of them.
            try await client.sendRaw([0, 0, 0x03, 0xe8] + [UInt8](repeating: 0xa0, count: 10))
            #expect(await client.waitForClose(timeout: .seconds(10)))
            try await TestSupport.eventually("the timeout in the log") { store.contains("stayed incomplete") }
        }
    }

    @Test func partialLargeFramesAreBoundedByTheInboundBudget() async throws {
        let store = CapturingLogHandler.Store()
        var configuration = Self.configuration(store)
        configuration.maxBufferedInboundBytes = 1 << 20
        try await TestSupport.withSimulator(configuration) { sim in
            // Each client announces a 40 MiB frame and sends 700 KiB of it.
            let prefix: [UInt8] = [0x02, 0x80, 0x00, 0x00]  // 41 943 040
            let part = [UInt8](repeating: 0x41, count: 700 << 10)
            let first = try RawClient(sim.listenAddress)
            try await first.handshake()
            try await first.sendRaw(prefix + part)
            try await TestSupport.eventually("the first partial frame to be buffered") {
                await sim.statistics().bufferedInboundBytes >= 700 << 10
            }
            let second = try RawClient(sim.listenAddress)
            try await second.handshake()
            try? await second.sendRaw(prefix + part)  // may fail once the simulator closes it
            #expect(await second.waitForClose(timeout: .seconds(10)))
            try await TestSupport.eventually("the refusal in the log") { store.contains("exceed 1048576 bytes") }
            try await TestSupport.eventually("the budget to be released") {
                await sim.statistics().bufferedInboundBytes <= 700 << 10 + 64
            }
            withExtendedLifetime(first) {}
        }
    }

    @Test func decoderBufferGrowsWithReceivedBytesNotTheDeclaredLength() throws {
        var decoder = ThinFrameDecoder()
        decoder.append([0x02, 0x80, 0x00, 0x00])  // declares 40 MiB
        decoder.append([UInt8](repeating: 0, count: 1024))
        #expect(try decoder.nextFrameBody() == nil)
        #expect(decoder.bufferedByteCount == 1028)
        #expect(decoder.bufferCapacity < 64 << 10)
    }

    @Test func refusalsAndFramingErrorsAreLoggedAtDebug() async throws {
        let store = CapturingLogHandler.Store()
        var configuration = Self.configuration(store)
        configuration.maxConnections = 1
        try await TestSupport.withSimulator(configuration) { sim in
            let first = try RawClient(sim.listenAddress)
            try await first.handshake()
            let second = try RawClient(sim.listenAddress)
            #expect(await second.waitForClose())
            #expect(store.contains("connection refused"))
            try await first.sendRaw([0xff, 0xff, 0xff, 0xff])
            #expect(await first.waitForClose())
            try await TestSupport.eventually("the framing error in the log") { store.contains("exceeds the cap") }
        }
    }
}
