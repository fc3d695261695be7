import CBOR
import Synchronization
import Testing
import ThinWire

@testable import ThinClient

/// `startResendingEncryptedMessage(_:completion:)`: the callback form, with no task waiting.
struct ResendingCallbackTests {
    typealias T = FakeDaemonProtocolTests

    /// Collects the one outcome a completion gets, and counts the calls.
    final class Outcome: Sendable {
        private let state = Mutex<(result: Result<ResendingResult, ThinClientError>?, calls: Int)>((nil, 0))
        func record(_ result: Result<ResendingResult, ThinClientError>) {
            state.withLock {
                $0.result = result
                $0.calls += 1
            }
        }
        var calls: Int { state.withLock { $0.calls } }
        var result: Result<ResendingResult, ThinClientError>? { state.withLock { $0.result } }

        func wait() async throws -> Result<ResendingResult, ThinClientError> {
            for _ in 0..<500 {
                if let result { return result }
                try await Task.sleep(for: .milliseconds(10))
            }
            throw ThinClientError(.timeout, "no outcome")
        }
    }

    @Test func theReplyReachesTheCompletionAndTheFrameIsReplayedByteForByte() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, first, _) = try await T.connect(daemon)
        let outcome = Outcome()
        _ = client.startResendingEncryptedMessage(T.readRequest()) { outcome.record($0) }
        let (original, originalBody) = try await first.nextMessage()
        #expect(original.key == ThinKey.Request.startResendingEncryptedMessage)
        #expect(try original.fields.bytes(ThinKey.Field.messageCiphertext) == [1, 2, 3])
        #expect(await client.outstandingMixnetRequests == 1)
        first.close()
        let second = try await daemon.nextConnection()
        try await second.handshake(resumed: true)
        let (replayed, replayedBody) = try await second.nextMessage()
        #expect(replayedBody == originalBody, "replayed byte for byte")
        try second.reply(to: replayed, [(ThinKey.Field.plaintext, .bytes([9, 9])), (ThinKey.Field.errorCode, .unsigned(0))])
        let result = try await outcome.wait()
        #expect(try result.get().plaintext == [9, 9])
        #expect(await client.outstandingMixnetRequests == 0)
        #expect(outcome.calls == 1)
        await client.close()
    }

    @Test func aReplicaErrorAndAPassedDeadlineAreFailures() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await T.connect(daemon)
        let notFound = Outcome()
        _ = client.startResendingEncryptedMessage(T.readRequest(hash: 1)) { notFound.record($0) }
        let request = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        try connection.reply(to: request, [(ThinKey.Field.errorCode, .unsigned(UInt64(ReplicaErrorCode.boxIDNotFound.rawValue)))])
        #expect(try await notFound.wait().failureCode == .boxIDNotFound)

        var late = T.readRequest(hash: 2)
        late.deadline = .after(.milliseconds(100))
        let timedOut = Outcome()
        _ = client.startResendingEncryptedMessage(late) { timedOut.record($0) }
        _ = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        #expect(try await timedOut.wait().failureCode == .timeout)
        let cancel = try await connection.expect(ThinKey.Request.cancelResendingEncryptedMessage)
        #expect(try cancel.fields.bytes(ThinKey.Field.envelopeHash, length: 32) == [UInt8](repeating: 2, count: 32))
        #expect(await client.outstandingMixnetRequests == 0)
        await client.close()
    }

    @Test func cancellingCancelsAtTheDaemonAndCompletesOnce() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await T.connect(daemon)
        let outcome = Outcome()
        let operation = client.startResendingEncryptedMessage(T.readRequest(hash: 0x42)) { outcome.record($0) }
        let original = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        operation.cancel()
        operation.cancel()
        let cancel = try await connection.expect(ThinKey.Request.cancelResendingEncryptedMessage)
        #expect(try cancel.fields.bytes(ThinKey.Field.envelopeHash, length: 32) == [UInt8](repeating: 0x42, count: 32))
        #expect(try await outcome.wait().failureCode == .cancelled)
        // The daemon's late answer is absorbed; the completion is not called again.
        try connection.reply(to: original, [(ThinKey.Field.errorCode, .unsigned(24))])
        try connection.reply(to: cancel, [(ThinKey.Field.errorCode, .unsigned(0))])
        try await Task.sleep(for: .milliseconds(100))
        #expect(outcome.calls == 1)
        #expect(await client.outstandingMixnetRequests == 0)
        await client.close()
    }

    @Test func aBadRequestCompletesInsideTheCall() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, _, _) = try await T.connect(daemon)
        var request = T.readRequest()
        request.message.envelopeHash = [1]
        let outcome = Outcome()
        let operation = client.startResendingEncryptedMessage(request) { outcome.record($0) }
        #expect(outcome.calls == 1)
        #expect(outcome.result?.failureCode == .invalidArgument)
        operation.cancel()
        #expect(outcome.calls == 1)
        await client.close()
    }

    @Test func closingTheClientFailsAWaitingCallback() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection, _) = try await T.connect(daemon)
        let outcome = Outcome()
        _ = client.startResendingEncryptedMessage(T.readRequest()) { outcome.record($0) }
        _ = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        await client.close()
        #expect(try await outcome.wait().failureCode == .closed)
        #expect(outcome.calls == 1)
    }
}

extension Result where Failure == ThinClientError {
    /// The failure's code, or `nil` for a success.
    var failureCode: ThinClientError.Code? {
        if case .failure(let error) = self { return error.code }
        return nil
    }
}
