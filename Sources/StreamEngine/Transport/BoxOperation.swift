import Synchronization

/// A started ``BoxChannel`` operation, which its starter may cancel.
///
/// ``BoxChannel/startWrite(index:bytes:completion:)`` and
/// ``BoxChannel/startRead(index:mode:completion:)`` return one. Cancelling asks the channel to
/// abandon the operation; its completion is still called exactly once, with
/// ``BoxTransportError/Code-swift.struct/cancelled`` if the cancellation took effect, or with the
/// operation's outcome if it had already finished or could not be stopped. Cancelling an
/// operation that has completed does nothing.
public struct BoxOperation: Sendable {
    private let onCancel: (@Sendable () -> Void)?

    /// An operation with nothing to cancel: it has completed (a store that answers at once
    /// returns this after calling the completion inline).
    public static let completed = BoxOperation(onCancel: nil)

    private init(onCancel: (@Sendable () -> Void)?) { self.onCancel = onCancel }

    /// An operation that `cancel` abandons.
    ///
    /// - Parameter cancel: asks the channel to abandon the operation. It may be called after
    ///   the operation completed, and more than once: it must then do nothing.
    public init(cancel: @escaping @Sendable () -> Void) { onCancel = cancel }

    /// Whether ``cancel()`` can do anything (it cannot for ``completed``), so a starter need
    /// not keep the operation.
    var isCancellable: Bool { onCancel != nil }

    /// Asks the channel to abandon the operation; see ``BoxOperation``.
    ///
    /// The completion may run inside this call, on the caller's thread.
    public func cancel() { onCancel?() }
}

extension BoxOperation {
    /// Runs `body` in a new task and passes its outcome to `completion`: the callback form of
    /// an operation whose work is asynchronous anyway, such as a Pigeonhole round trip.
    ///
    /// Cancelling the returned operation cancels the task. An error `body` throws reaches
    /// `completion` as ``BoxTransportError/init(classifying:)`` makes it.
    public static func task<Value: Sendable>(
        _ body: @escaping @Sendable () async throws -> Value,
        completion: @escaping @Sendable (Result<Value, BoxTransportError>) -> Void
    ) -> BoxOperation {
        let task = Task {
            let result: Result<Value, BoxTransportError>
            do {
                result = .success(try await body())
            } catch {
                result = .failure(BoxTransportError(classifying: error))
            }
            completion(result)
        }
        return BoxOperation { task.cancel() }
    }

    /// Starts an operation with `start` and suspends until it completes: the async form of a
    /// callback-form operation.
    ///
    /// Cancelling the calling task cancels the operation; this then throws the failure its
    /// completion got: usually ``BoxTransportError/Code-swift.struct/cancelled`` (not
    /// `CancellationError`: every failure of a box operation is a ``BoxTransportError``).
    public static func value<Value: Sendable>(
        of start: (_ completion: @escaping @Sendable (Result<Value, BoxTransportError>) -> Void) -> BoxOperation
    ) async throws -> Value {
        let handle = Handle()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<Value, BoxTransportError>, Never>) in
                let operation = start { continuation.resume(returning: $0) }
                handle.started(operation)
            }
        } onCancel: {
            handle.cancel()
        }
        return try result.get()
    }

    /// The operation an awaiting task started, for its cancellation handler (which may run
    /// before the operation starts, or while it does).
    private final class Handle: Sendable {
        private let state = Mutex<(operation: BoxOperation?, cancelled: Bool)>((nil, false))

        func started(_ operation: BoxOperation) {
            let cancelled = state.withLock {
                $0.operation = operation
                return $0.cancelled
            }
            if cancelled { operation.cancel() }
        }

        func cancel() {
            let operation = state.withLock {
                $0.cancelled = true
                return $0.operation
            }
            operation?.cancel()
        }
    }
}
