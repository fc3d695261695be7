import KpclientdSim
import StreamEngine
import Synchronization
import Testing
import ThinClient

@testable import PigeonholeTransport

/// Waiting reads under `.reissue(every:)` started through `startRead`: no task waits for the box.
struct ReissuedReadTests {
    /// Collects a completion's calls.
    final class Completions: Sendable {
        private let state = Mutex<[Result<[UInt8]?, BoxTransportError>]>([])
        func record(_ result: Result<[UInt8]?, BoxTransportError>) { state.withLock { $0.append(result) } }
        var all: [Result<[UInt8]?, BoxTransportError>] { state.withLock { $0 } }

        func first() async throws -> Result<[UInt8]?, BoxTransportError> {
            for _ in 0..<1000 {
                if let result = all.first { return result }
                try await Task.sleep(for: .milliseconds(10))
            }
            throw BoxTransportError(.timeout, "no completion")
        }
    }

    @Test func aReadIsReissuedWithAFreshEnvelopeUntilItsBoxIsWritten() async throws {
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .reissue(every: .milliseconds(300))
        let harness = try await PigeonholeHarness.start(configureSim: { $0.meanLatency = .milliseconds(2) }, transport: transport)
        let channel = try await harness.store.pigeonholeChannel(.writerSeed(seed(21)))
        let size = channel.payloadSize
        let completions = Completions()
        _ = channel.startRead(index: 1, mode: .wait) { completions.record($0) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        // Past `every` the request is cancelled at the daemon and issued again, encrypted
        // afresh, and the new one waits in turn. Polled, not slept for: under load the reissue
        // may be between its cancel and its new request at any fixed moment.
        var stats = await harness.sim.statistics()
        let patience = ContinuousClock.now + .seconds(30)
        while !(stats.requestsByKind["encrypt_read", default: 0] >= 2
            && stats.requestsByKind["cancel_resending_encrypted_message", default: 0] >= 1 && stats.blockedReads == 1),
            ContinuousClock.now < patience {
            try await Task.sleep(for: .milliseconds(5))
            stats = await harness.sim.statistics()
        }
        #expect(stats.requestsByKind["encrypt_read", default: 0] >= 2)
        #expect(stats.requestsByKind["cancel_resending_encrypted_message", default: 0] >= 1)
        #expect(stats.blockedReads == 1)
        #expect(completions.all.isEmpty)
        try await channel.write(index: 1, bytes: box(size, 21))
        #expect(try await completions.first().get() == box(size, 21))
        try await Task.sleep(for: .milliseconds(50))
        #expect(completions.all.count == 1)
        #expect(await harness.client.outstandingMixnetRequests == 0)
        await harness.stop()
    }

    @Test func cancellingCompletesOnceAndCancelsAtTheDaemon() async throws {
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .reissue(every: .seconds(30))
        let harness = try await PigeonholeHarness.start(configureSim: { $0.meanLatency = .milliseconds(2) }, transport: transport)
        let channel = try await harness.store.pigeonholeChannel(.writerSeed(seed(22)))
        // Cancelled while it waits at the daemon.
        let waiting = Completions()
        let operation = channel.startRead(index: 4, mode: .wait) { waiting.record($0) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        operation.cancel()
        operation.cancel()
        #expect(failureCode(try await waiting.first()) == .cancelled)
        while await harness.sim.statistics().inFlightOperations > 0 { try await Task.sleep(for: .milliseconds(5)) }
        // Cancelled at once, before its index lookup and encryption are done.
        let early = Completions()
        channel.startRead(index: 9, mode: .wait) { early.record($0) }.cancel()
        #expect(failureCode(try await early.first()) == .cancelled)
        try await Task.sleep(for: .milliseconds(100))
        #expect(waiting.all.count == 1 && early.all.count == 1)
        #expect(await harness.sim.statistics().inFlightOperations == 0)
        #expect(await harness.client.outstandingMixnetRequests == 0)
        await harness.stop()
    }
}

/// The failure's code, or `nil` for a success.
private func failureCode(_ result: Result<[UInt8]?, BoxTransportError>) -> BoxTransportError.Code? {
    if case .failure(let error) = result { return error.code }
    return nil
}
