import Foundation
import KpclientdSim
import Testing
import ThinWire

#if canImport(Glibc)
import Glibc
#endif

/// Shutdown while reads wait for empty boxes, at zero latency (where nothing else in the ARQ
/// loop suspends).
@Suite(.timeLimit(.minutes(2)))
struct ShutdownTests {
    /// Runs `body`, failing if it takes longer than `limit`.
    static func within(_ limit: Duration, _ what: String, _ body: @escaping @Sendable () async -> Void) async throws {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                await body()
                return true
            }
            group.addTask {
                try await Task.sleep(for: limit)
                return false
            }
            let finished = try await group.next() ?? false
            group.cancelAll()
            if !finished { throw TestFailure("\(what) took longer than \(limit)") }
        }
    }

    @Test func shutdownEndsWaitingReadsAndCopiesAtZeroLatency() async throws {
        var configuration = TestSupport.configuration()
        configuration.meanLatency = .zero
        let sim = try await KpclientdSimulator.start(configuration)
        let client = try RawClient(sim.listenAddress)
        try await client.handshake()
        let stream = try await Stream(client)
        let envelope = try await stream.encryptRead(client, stream.first)
        _ = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
        try await TestSupport.eventually("the read to block") { await sim.statistics().blockedReads == 1 }
        // A polling client reads again when it hears of the shutdown: that read starts after
        // shutdown has begun, when waiting for the box returns at once.
        let shutdown = Task { await sim.shutdown() }
        _ = try await client.waitFor(ThinKey.Event.shutdown)
        let again = try await stream.encryptRead(client, stream.first)
        _ = try? await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(again, write: false, index: stream.first))
        try await Self.within(.seconds(10), "shutdown with a waiting read") { await shutdown.value }
        #expect(await client.waitForClose())
    }

    @Test func sigtermStopsTheProcessWhileAReadWaits() async throws {
        let child = try ProductProcess("kpclientd-sim", ["--listen", "tcp:127.0.0.1:0", "--latency", "0", "--log-level", "warning"])
        let printed = try await child.listenAddress()
        let address = try SimListenAddress(parsing: printed)
        let client = try RawClient(address)
        try await client.handshake()
        let stream = try await Stream(client)
        let envelope = try await stream.encryptRead(client, stream.first)
        let readID = try await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(envelope, write: false, index: stream.first))
        // The read stays unanswered (the box is empty): the ARQ is waiting.
        await #expect(throws: TestFailure.self) {
            _ = try await client.waitFor(ThinKey.Reply.startResendingEncryptedMessage, queryID: readID, timeout: .milliseconds(500))
        }
        child.signal(SIGTERM)
        // As a polling client does, read again once the shutdown is announced.
        _ = try await client.waitFor(ThinKey.Event.shutdown)
        let again = try await stream.encryptRead(client, stream.first)
        _ = try? await client.submit(ThinKey.Request.startResendingEncryptedMessage, stream.arqFields(again, write: false, index: stream.first))
        let status = try await child.wait(timeout: .seconds(5))
        #expect(status == 0, "kpclientd-sim did not exit within 5 s of SIGTERM (status \(String(describing: status))); stderr: \(child.stderr)")
    }

    @Test func demoOverTheSimulatorAtZeroLatencyExits() async throws {
        for attempt in 1...3 {
            let result = try await ProductProcess.run(
                "streamd", ["demo", "--transport", "kpclientd-sim", "--latency-ms", "0", "--loss", "0", "--bytes", "3000"],
                timeout: .seconds(30))
            #expect(result.status == 0, "attempt \(attempt): \(result.stdout) \(result.stderr)")
            if result.status != 0 { break }
        }
    }
}
