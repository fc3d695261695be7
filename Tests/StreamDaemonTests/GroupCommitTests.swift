import IPC
import StreamClient
import StreamDaemon
import Testing

/// Many small writes at once: each is answered once durable (group commits pipelined on the
/// store thread, replies sent by the host without a task per write), and a restart holds
/// every acknowledged byte.
@Suite(.timeLimit(.minutes(10)))
struct GroupCommitTests {
    @Test func concurrentSmallWritesAreAllAcknowledgedAndSurviveARestart() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        let daemon = try await DaemonHarness.start(configuration)
        let writers = 12
        let writes = 30
        var clients: [StreamdClient] = []
        for index in 0..<writers {
            let client = try await daemon.client()
            _ = try await client.create("w\(index)")
            clients.append(client)
        }
        let ends = try await withThrowingTaskGroup(of: UInt64.self) { group in
            for (index, client) in clients.enumerated() {
                group.addTask {
                    var offset: UInt64 = 0
                    for write in 0..<writes {
                        let data = DaemonIntegrationTests.pattern(100, seed: UInt8(truncatingIfNeeded: index * writes + write))
                        let (accepted, end) = try await client.write("w\(index)", offset: offset, data: data)
                        #expect(accepted == 100 && end == offset + 100)
                        offset = end
                    }
                    // A retry of the last write is confirmed without new bytes.
                    let retry = try await client.write("w\(index)", offset: offset - 100, data: DaemonIntegrationTests.pattern(100, seed: 0))
                    #expect(retry.accepted == 0 && retry.offset == offset)
                    return offset
                }
            }
            var all: [UInt64] = []
            for try await end in group { all.append(end) }
            return all
        }
        #expect(ends == Array(repeating: UInt64(writes * 100), count: writers))
        for client in clients { await client.close() }
        let stopped = await daemon.stop()
        #expect(throws: Never.self) { try stopped.get() }

        let restarted = try await DaemonHarness.start(configuration)
        let client = try await restarted.client()
        for index in 0..<writers {
            #expect(try await client.status("w\(index)").bytesWritten == UInt64(writes * 100))
        }
        await client.close()
        await restarted.stop()
    }

    @Test func writesToARemovedStreamAndToAClosedOneAreRefused() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let client = try await daemon.client()
        _ = try await client.create("gone")
        #expect(try await client.write("gone", offset: 0, data: [1, 2, 3]).accepted == 3)
        try await client.remove("gone")
        do {
            _ = try await client.write("gone", offset: 3, data: [4])
            Issue.record("a write to a removed stream was accepted")
        } catch let error as IPCError {
            #expect(error.code == .noSuchStream)
        }
        _ = try await client.create("shut")
        try await client.closeStream("shut", wait: false)
        do {
            _ = try await client.write("shut", offset: 0, data: [1])
            Issue.record("a write to a closed stream was accepted")
        } catch let error as IPCError {
            #expect(error.code == .closed)
        }
        await client.close()
        await daemon.stop()
    }
}
