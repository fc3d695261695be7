import Synchronization

/// A `start_resending_encrypted_message` started with a completion callback, which its starter
/// may cancel (``ThinClient/startResendingEncryptedMessage(_:completion:)``).
///
/// Cancelling stops the request wherever it is: waiting for admission, or sent (then
/// `cancel_resending_encrypted_message` goes to the daemon). Its completion is still called
/// once: with ``ThinClientError/Code-swift.struct/cancelled`` if the cancel took effect, or with
/// the outcome that came first. Cancelling more than once, or after completion, does nothing more.
public final class ResendingOperation: Sendable {
    private let client: ThinClient?
    private let queryID: [UInt8]
    /// The task submitting the request while it runs (a finished task kept here would keep
    /// its memory), whether the request was cancelled, and whether submission is over.
    private let state = Mutex<(submission: Task<Void, Never>?, cancelled: Bool, submitted: Bool)>((nil, false, false))

    init(client: ThinClient?, queryID: [UInt8]) {
        self.client = client
        self.queryID = queryID
    }

    /// Records the task that submits the request (cancelled at once if ``cancel()`` came first).
    func started(_ submission: Task<Void, Never>) {
        let cancelled = state.withLock {
            if !$0.submitted { $0.submission = submission }
            return $0.cancelled
        }
        if cancelled { submission.cancel() }
    }

    /// Forgets the submitting task once it has sent the request (or failed to).
    func submissionEnded() {
        state.withLock {
            $0.submitted = true
            $0.submission = nil
        }
    }

    /// Cancels the request; see ``ResendingOperation``.
    public func cancel() {
        let submission: Task<Void, Never>?? = state.withLock {
            guard !$0.cancelled else { return .none }
            $0.cancelled = true
            return .some($0.submission)
        }
        guard case .some(let task) = submission else { return }
        task?.cancel()
        guard let client else { return }
        let queryID = queryID
        Task { await client.cancelRequest(queryID: queryID) }
    }
}
