import Synchronization

/// The completions of a ``Stream``'s box operations (and the app calls and waits that found its
/// lock taken), queued for the stream to hand to its machine.
///
/// A completion may arrive on any thread, or inside the `start…` call that issued the operation
/// while the stream is in the middle of a step; it only queues its outcome here, so the machine
/// never runs re-entrantly. While a step drains (from its start until it finds the inbox
/// empty), completions are left for it: inline completions cost no task switch. Otherwise the
/// first poster since the last drain began is told to drain the inbox itself, if it can take
/// the stream's lock; if it cannot, the holder drains it after releasing the lock
/// (``needsDrain``).
///
/// The inbox holds the one weak reference to its stream, so an operation's completion captures
/// only the inbox: no weak reference is made and destroyed per operation.
final class CompletionInbox: Sendable {
    /// The outcome of one operation.
    enum Completion: Sendable {
        case write(OperationID, Result<Void, BoxTransportError>)
        case read(OperationID, Result<[UInt8]?, BoxTransportError>)
        /// An app call that found the lock taken: it runs under the lock, in the drain.
        case call(@Sendable (inout Stream.State) -> Void)
    }

    private struct State {
        var queued: [Completion] = []
        /// Whether a step will look at the inbox again before it stops draining.
        var draining = false
        /// Whether a poster was told to drain and no drain has begun since.
        var scheduled = false
        /// The stream that drains this inbox, once attached.
        weak var stream: Stream?
    }

    private let state = Mutex(State())

    /// Names the stream that drains this inbox (once, when the stream is made).
    func attach(_ stream: Stream) {
        state.withLock { $0.stream = stream }
    }

    /// Queues `completion`; returns the stream if the caller must drain the inbox (no step is
    /// draining it, no poster was told to since the last drain began, and the stream still
    /// exists).
    func post(_ completion: sending Completion) -> Stream? {
        state.withLock {
            $0.queued.append(completion)
            guard !$0.draining, !$0.scheduled, let stream = $0.stream else { return nil }
            $0.scheduled = true
            return stream
        }
    }

    /// Whether completions wait and no step is draining them.
    var needsDrain: Bool {
        state.withLock { !$0.draining && !$0.queued.isEmpty }
    }

    /// Marks the start of a drain: completions posted from now on are left for the step
    /// until ``take(into:)`` finds the inbox empty.
    func beginDraining() {
        state.withLock {
            $0.draining = true
            $0.scheduled = false
        }
    }

    /// Moves the queued completions into `batch` (which must be empty, and whose storage the
    /// inbox keeps for the next ones); returns `false`, and ends the drain, if none are queued.
    func take(into batch: inout [Completion]) -> Bool {
        state.withLock {
            guard !$0.queued.isEmpty else {
                $0.draining = false
                return false
            }
            swap(&$0.queued, &batch)
            return true
        }
    }
}
