/// Caps the number of outstanding mixnet-path requests, with a bounded FIFO of waiters.
///
/// kpclientd queues at most 16 mixnet-path requests per connection and stops reading while the
/// queue is full, which would also stall local requests. The limiter keeps the client below that
/// bound. It is plain state owned by the ``ThinClient`` actor; waiting happens through the
/// continuations it stores.
struct MixnetLimiter {
    typealias Waiter = CheckedContinuation<Void, any Error>

    /// The number of slots.
    let capacity: Int
    /// The most waiters kept; more fail at once.
    let maxWaiters: Int
    /// Slots currently held.
    private(set) var inUse = 0
    /// Waiters in arrival order (bounded by ``maxWaiters``).
    private var waiters: [(id: UInt64, continuation: Waiter)] = []
    private var head = 0

    init(capacity: Int, maxWaiters: Int) {
        self.capacity = capacity
        self.maxWaiters = maxWaiters
    }

    /// The number of requests waiting for a slot.
    var waiterCount: Int { waiters.count - head }

    /// Takes a slot at once if one is free and nobody is waiting ahead.
    mutating func tryAcquire() -> Bool {
        guard inUse < capacity, waiterCount == 0 else { return false }
        inUse += 1
        return true
    }

    /// Queues a waiter, which is resumed once it owns a slot.
    ///
    /// - Returns: `false` if the queue is full (the continuation is left untouched).
    mutating func enqueue(id: UInt64, _ continuation: Waiter) -> Bool {
        guard waiterCount < maxWaiters else { return false }
        waiters.append((id, continuation))
        return true
    }

    /// Returns a slot, handing it straight to the oldest waiter if there is one.
    mutating func release() {
        precondition(inUse > 0, "MixnetLimiter released more slots than it handed out")
        if let next = popFirst() {
            next.continuation.resume()
        } else {
            inUse -= 1
        }
    }

    /// Removes a waiter that gave up (its task was cancelled).
    ///
    /// - Returns: its continuation, to be resumed by the caller, or `nil` if it already owns a slot.
    mutating func removeWaiter(id: UInt64) -> Waiter? {
        guard let index = waiters[head...].firstIndex(where: { $0.id == id }) else { return nil }
        let removed = waiters.remove(at: index)
        compact()
        return removed.continuation
    }

    /// Fails every waiter (when the client closes).
    mutating func failAllWaiters(_ error: any Error) {
        while let next = popFirst() {
            next.continuation.resume(throwing: error)
        }
    }

    private mutating func popFirst() -> (id: UInt64, continuation: Waiter)? {
        guard head < waiters.count else { return nil }
        let first = waiters[head]
        head += 1
        compact()
        return first
    }

    private mutating func compact() {
        if head == waiters.count {
            waiters.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 64 && head * 2 > waiters.count {
            waiters.removeFirst(head)
            head = 0
        }
    }
}
