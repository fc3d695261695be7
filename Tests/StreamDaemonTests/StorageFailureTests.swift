import IPC
import StreamClient
import StreamDaemon
import StreamStore
import Testing

/// A failed fsync is fatal: the daemon stops with an error, retries nothing, and a restart
/// recovers every byte it had acknowledged.
@Suite(.timeLimit(.minutes(10)))
struct StorageFailureTests {
    @Test func aFailedFsyncStopsTheDaemonAndARestartRecovers() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        let faults = try StoreFaultInjector()
        let daemon = try await DaemonHarness.start(configuration, storeFaults: faults)
        let client = try await daemon.client()
        _ = try await client.create("kept")
        let acknowledged = DaemonIntegrationTests.pattern(10_000, seed: 9)
        #expect(try await client.write("kept", offset: 0, data: acknowledged).offset == UInt64(acknowledged.count))

        // The next fsync fails: the write that needed it is not acknowledged.
        faults.failSync(nth: 1, with: .ioError)
        do {
            _ = try await client.write("kept", offset: UInt64(acknowledged.count), data: [1, 2, 3])
            Issue.record("a write was acknowledged although its commit failed")
        } catch {
            // Refused, or the connection ended as the daemon stopped: either way, no promise.
        }
        let ended = await daemon.stop()
        #expect(throws: (any Error).self, "the daemon must stop with an error after a failed commit") { try ended.get() }
        await client.close()

        // A restart, with a healthy disk, recovers what was acknowledged.
        let restarted = try await DaemonHarness.start(configuration)
        let again = try await restarted.client()
        let status = try await again.status("kept")
        #expect(status.bytesWritten >= UInt64(acknowledged.count))
        #expect(try await again.write("kept", offset: status.bytesWritten, data: [4]).accepted == 1)
        await again.close()
        let stopped = await restarted.stop()
        #expect(throws: Never.self) { try stopped.get() }
    }
}
