import IPC
import StreamClient
import StreamDaemon
import StreamStore
import Testing

/// Writes pipelined on one connection (`StreamdClient.issue` / `reply(to:)`, and `send` with a
/// depth): they take effect in the order issued, a retry is idempotent, and every `written`
/// reply still means durable.
@Suite(.timeLimit(.minutes(10)))
struct PipelinedWriteTests {
    @Test func pipelinedWritesTakeEffectInOrderAndArriveWhole() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let alice = try await daemon.client()
        let bob = try await daemon.client()
        let (_, address) = try await alice.create("alice")
        _ = try await bob.join("bob", address: address)
        let name = try StreamName("alice")
        let writes = 40
        let pieces = (0..<writes).map { DaemonIntegrationTests.pattern(100 + $0, seed: UInt8($0)) }
        // Every write is issued before any reply is awaited.
        var issued: [(StreamdClient.PendingReply, end: UInt64)] = []
        var offset: UInt64 = 0
        for piece in pieces {
            issued.append((try await alice.issue(.write(name: name, offset: offset, data: piece)), offset + UInt64(piece.count)))
            offset += UInt64(piece.count)
        }
        for ((pending, end), piece) in zip(issued, pieces) {
            #expect(try await alice.reply(to: pending) == .written(accepted: UInt64(piece.count), offset: end))
        }
        #expect(try await alice.status("alice").bytesWritten == offset)
        try await alice.closeStream("alice")
        #expect(try await DaemonIntegrationTests.receiveAll(bob, "bob") == Array(pieces.joined()))
        await alice.close()
        await bob.close()
        let stopped = await daemon.stop()
        #expect(throws: Never.self) { try stopped.get() }
    }

    @Test func pipelinedSendThroughFullBuffersIsIdempotentOnRetry() async throws {
        let directory = TemporaryDirectory()
        var configuration = DaemonHarness.configuration(in: directory.path)
        // A small buffer: the pipelined writes meet partial accepts and the gaps behind them.
        configuration.stream.maxWriteBuffer = 8192
        let daemon = try await DaemonHarness.start(configuration)
        let alice = try await daemon.client()
        let bob = try await daemon.client()
        let (_, address) = try await alice.create("alice")
        _ = try await bob.join("bob", address: address)
        let data = DaemonIntegrationTests.pattern(60_000, seed: 5)
        #expect(try await alice.send("alice", bytes: Array(data[..<40_000]), at: 0, depth: 8, chunkSize: 3000) == 40_000)
        // A retry of bytes already held, and one that overlaps the end, hold nothing twice.
        #expect(try await alice.send("alice", bytes: Array(data[..<40_000]), at: 0, depth: 8, chunkSize: 3000) == 40_000)
        #expect(try await alice.send("alice", bytes: Array(data[30_000...]), at: 30_000, depth: 16, chunkSize: 1000) == 60_000)
        #expect(try await alice.status("alice").bytesWritten == 60_000)
        try await alice.closeStream("alice")
        #expect(try await DaemonIntegrationTests.receiveAll(bob, "bob") == data)
        await alice.close()
        await bob.close()
        await daemon.stop()
    }

    @Test func aPipelinedSendPastTheEndIsRefused() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let client = try await daemon.client()
        _ = try await client.create("s")
        do {
            _ = try await client.send("s", bytes: [UInt8](repeating: 1, count: 1000), at: 10, depth: 4, chunkSize: 100)
            Issue.record("a send past the stream's end was accepted")
        } catch let error as IPCError {
            #expect(error.code == .wrongOffset)
            #expect(error.expectedOffset == 0)
        }
        #expect(try await client.send("s", bytes: [UInt8](repeating: 1, count: 1000), at: 0, depth: 4, chunkSize: 100) == 1000)
        await client.close()
        await daemon.stop()
    }

    @Test func everyPipelinedReplySurvivesAPowerCut() async throws {
        let directory = TemporaryDirectory()
        let configuration = DaemonHarness.configuration(in: directory.path)
        let faults = try StoreFaultInjector()
        let daemon = try await DaemonHarness.start(configuration, storeFaults: faults)
        let client = try await daemon.client()
        _ = try await client.create("s")
        let name = try StreamName("s")
        let payload = DaemonIntegrationTests.pattern(100, seed: 1)
        // Several commits from now the power goes before an fsync: what it would have made
        // durable is lost, and no write waiting for it may have been answered.
        faults.cutPowerAtSync(nth: 8, timing: .beforeSync)
        var next: UInt64 = 0
        var acknowledged: UInt64 = 0
        var inFlight: [(reply: StreamdClient.PendingReply, end: UInt64)] = []
        writing: while true {
            while inFlight.count < 8 {
                guard let pending = try? await client.issue(.write(name: name, offset: next, data: payload)) else { break writing }
                next += 100
                inFlight.append((pending, next))
            }
            let write = inFlight.removeFirst()
            guard case .written(let accepted, let end)? = try? await client.reply(to: write.reply) else { break }
            #expect(accepted == 100 && end == write.end, "pipelined replies come in order, each for its own bytes")
            acknowledged = end
        }
        #expect(faults.isPowerCut)
        #expect(acknowledged > 0)
        // (That a failed commit stops the daemon is StorageFailureTests' business.)
        await daemon.stop()
        await client.close()

        let restarted = try await DaemonHarness.start(configuration)
        let again = try await restarted.client()
        #expect(try await again.status("s").bytesWritten >= acknowledged, "every written reply was durable")
        await again.close()
        await restarted.stop()
    }
}
