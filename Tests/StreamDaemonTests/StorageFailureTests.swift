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

/// A stream whose box size kpclientd no longer uses is stopped with a clear reason.
@Suite(.timeLimit(.minutes(10)))
struct GeometryChangeTests {
    @Test func aChangedBoxSizeFailsOnlyTheStreamsItAffects() async throws {
        let directory = TemporaryDirectory()
        var configuration = DaemonHarness.configuration(in: directory.path)
        var daemon = try await DaemonHarness.start(configuration)
        var client = try await daemon.client()
        _ = try await client.create("old")
        await client.close()
        await daemon.stop()

        configuration.embedded.boxSize = 2048
        daemon = try await DaemonHarness.start(configuration)
        client = try await daemon.client()
        // The failure is found when kpclientd's geometry arrives; wait for it.
        var status = try await client.status("old")
        for _ in 0..<200 where status.state != .failed {
            try await Task.sleep(for: .milliseconds(20))
            status = try await client.status("old")
        }
        #expect(status.state == .failed)
        #expect(status.reason?.contains("geometryChanged") == true)
        do {
            _ = try await client.write("old", offset: 0, data: [1])
            Issue.record("a write to a stopped stream was accepted")
        } catch let error as IPCError {
            #expect(error.code == .streamFailed)
        }
        // New streams use the new size and work.
        _ = try await client.create("new")
        #expect(try await client.write("new", offset: 0, data: [1]).accepted == 1)
        await client.close()
        await daemon.stop()
    }
}
