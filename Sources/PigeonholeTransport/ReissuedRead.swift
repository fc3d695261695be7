import StreamEngine
import Synchronization
import ThinClient

/// A waiting read of one box under ``WaitingReadStrategy/reissue(every:)``, driven by
/// callbacks: kpclientd retries it until the box is written, and meanwhile nothing but the
/// thin client's pending request (its encoded frame and a callback) holds it.
///
/// The same steps as ``PigeonholeBoxChannel/read(index:mode:)``: the box's index, a fresh
/// `encrypt_read`, then `start_resending_encrypted_message` with a deadline of `every`; when
/// that passes unanswered, the read is re-issued with a fresh envelope. The index lookup and
/// the encryption run in a short task; the wait for the box runs in none. A daemon idle with
/// hundreds of reads ahead held a suspended task per read before (about 5 KiB of async frames
/// each, across the host, the channel and the thin client).
final class ReissuedRead: Sendable {
    private let channel: PigeonholeBoxChannel
    private let number: UInt64
    private let every: Duration
    private let completion: @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void

    private struct State {
        /// The task looking up the index and encrypting, if any.
        var work: Task<Void, Never>?
        /// The request waiting at kpclientd, if any.
        var request: ResendingOperation?
        var cancelled = false
        var completed = false
        /// Whether the current attempt's task has handed its request to the thin client.
        var submitted = false
        /// The current attempt, counted from 1 (a stale attempt's updates are ignored).
        var attempt = 0
    }

    private let state = Mutex(State())

    init(
        channel: PigeonholeBoxChannel, number: UInt64, every: Duration,
        completion: @escaping @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void
    ) {
        self.channel = channel
        self.number = number
        self.every = every
        self.completion = completion
    }

    /// Starts the read: the box's index, then the first attempt.
    func start() { attempt(nil) }

    /// Cancels the read; the completion gets ``BoxTransportError/Code-swift.struct/cancelled``
    /// (or the outcome, if it came first).
    func cancel() {
        let (work, request) = state.withLock { state -> (Task<Void, Never>?, ResendingOperation?) in
            state.cancelled = true
            return (state.work, state.request)
        }
        work?.cancel()
        request?.cancel()
        if work == nil && request == nil { finish(.failure(BoxTransportError(.cancelled, "read of box \(number) was cancelled"))) }
    }

    /// One attempt with a fresh envelope; `boxIndex` is looked up first if `nil`.
    private func attempt(_ boxIndex: MessageBoxIndex?) {
        let attempt = state.withLock {
            $0.attempt += 1
            $0.submitted = false
            return $0.attempt
        }
        let work = Task {
            do {
                let index: MessageBoxIndex
                if let boxIndex {
                    index = boxIndex
                } else {
                    index = try await channel.messageBoxIndex(of: number)
                }
                let message = try await channel.encryptRead(number, index)
                try Task.checkCancellation()
                submit(message, index, attempt: attempt)
            } catch {
                finish(.failure(boxTransportError(error, operation: "read of box \(number)")))
            }
        }
        let cancelled = state.withLock {
            // Kept only while it runs: a finished task kept here would keep its memory.
            if $0.attempt == attempt && !$0.completed && !$0.submitted { $0.work = work }
            return $0.cancelled
        }
        if cancelled { work.cancel() }
    }

    private func submit(_ message: consuming EncryptedMessage, _ boxIndex: MessageBoxIndex, attempt: Int) {
        var request = ResendingRequest.read(consume message, readCapability: channel.readCapability, index: boxIndex)
        request.deadline = .after(every)
        let operation = channel.client.startResendingEncryptedMessage(consume request) { [self] result in
            replied(result, boxIndex)
        }
        let cancelled = state.withLock {
            guard $0.attempt == attempt else { return false }
            $0.work = nil
            $0.submitted = true
            $0.request = operation
            return $0.cancelled
        }
        if cancelled { operation.cancel() }
    }

    private func replied(_ result: Result<ResendingResult, ThinClientError>, _ boxIndex: MessageBoxIndex) {
        switch result {
        case .success(let reply):
            do throws(BoxTransportError) {
                finish(.success(try channel.box(number, from: reply)))
            } catch {
                finish(.failure(error))
            }
        case .failure(let error) where error.code == .timeout:
            // kpclientd kept it for `every` without an answer: again, with a fresh envelope.
            let cancelled = state.withLock {
                $0.request = nil
                return $0.cancelled
            }
            if cancelled {
                finish(.failure(BoxTransportError(.cancelled, "read of box \(number) was cancelled")))
            } else {
                attempt(boxIndex)
            }
        case .failure(let error) where error.code == .tombstone:
            finish(.failure(BoxTransportError(.deleted, "box \(number) holds a tombstone (deleted)")))
        case .failure(let error):
            finish(.failure(boxTransportError(error, operation: "read of box \(number)")))
        }
    }

    /// Calls the completion, once.
    private func finish(_ result: Result<[UInt8]?, BoxTransportError>) {
        let first = state.withLock { state -> Bool in
            guard !state.completed else { return false }
            state.completed = true
            state.work = nil
            state.request = nil
            return true
        }
        if first { completion(result) }
    }
}
