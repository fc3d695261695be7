import StreamEngine

/// Caps how many waiting reads a store has in flight, in FIFO order, with cancellation.
///
/// A `.wait` read holds one of the thin client's mixnet slots until its box is written, which
/// may be never. If waiting reads could take every slot, writes (which would fill those boxes)
/// could not be sent at all. The gate keeps some slots free for writes and polls.
actor ReadGate {
    let capacity: Int
    let maxQueued: Int
    private var inUse = 0
    private var waiters: [(id: UInt64, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextID: UInt64 = 0

    init(capacity: Int, maxQueued: Int) {
        self.capacity = max(1, capacity)
        self.maxQueued = max(0, maxQueued)
    }

    /// Waits for a place.
    ///
    /// - Throws: `CancellationError` if the task is cancelled while waiting;
    ///   ``BoxTransportError/Code-swift.struct/unavailable`` if too many reads already wait.
    func acquire() async throws {
        try Task.checkCancellation()
        if inUse < capacity && waiters.isEmpty {
            inUse += 1
            return
        }
        guard waiters.count < maxQueued else {
            throw BoxTransportError(.unavailable, "too many waiting reads queued (at most \(maxQueued))")
        }
        let id = nextID
        nextID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
        if Task.isCancelled {
            release()
            throw CancellationError()
        }
    }

    /// Gives a place back, handing it to the oldest waiter if there is one.
    func release() {
        if waiters.isEmpty {
            inUse -= 1
        } else {
            waiters.removeFirst().continuation.resume()
        }
    }

    private func cancel(_ id: UInt64) {
        guard let position = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: position).continuation.resume(throwing: CancellationError())
    }

    /// Reads holding a place (for tests and diagnostics).
    var active: Int { inUse }
    /// Reads waiting for a place.
    var queued: Int { waiters.count }
}
