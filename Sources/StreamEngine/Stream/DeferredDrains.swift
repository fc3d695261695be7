import Synchronization

/// The streams whose inboxes were posted to while the current task held a stream's lock, to be
/// drained once it released it, and the waiters those drains woke, to be resumed after.
///
/// One stream's step lands the peer's parked reads box by box; draining the peer at each one
/// would take and release the peer's lock per box, against the peer's app task. Collected, the
/// peer is drained once per step, with all the boxes of that step, on the same task; and the app
/// tasks woken meanwhile start once that chain of drains is over instead of contending with it.
final class DeferredDrains: Sendable {
    private struct Pending {
        var streams: [Stream] = []
        var wakeUps: [@Sendable () -> Void] = []
    }

    /// What to do; `nil` once the collector finished (a task made while it collected inherits
    /// it as its task-local value, and must then act at once).
    private let pending = Mutex<Pending?>(Pending())

    /// The collector of the current task, while one of its calls holds a stream's lock.
    @TaskLocal private static var current: DeferredDrains?

    /// Drains `stream` now, or once the current task's outermost locked call ends.
    static func drain(_ stream: Stream) {
        if let current, current.pending.withLock({ $0?.streams.append(stream) }) != nil { return }
        collecting { stream.drainPosted() }
    }

    /// Resumes a waiter now, or once the current task's drains are over.
    static func wake(_ resume: @escaping @Sendable () -> Void) {
        if let current, current.pending.withLock({ $0?.wakeUps.append(resume) }) != nil { return }
        resume()
    }

    /// Runs `body` collecting the drains it causes (unless an outer call collects them), then
    /// runs them, and those they cause, until none are left; then resumes the waiters they woke.
    static func collecting<Result>(_ body: () throws -> Result) rethrows -> Result {
        if let current, current.pending.withLock({ $0 != nil }) { return try body() }
        let collector = DeferredDrains()
        return try $current.withValue(collector) {
            defer { collector.finish() }
            return try body()
        }
    }

    /// Drains the collected streams until none are left, then stops collecting and resumes
    /// the waiters.
    private func finish() {
        while true {
            let (stream, wakeUps) = pending.withLock { pending -> (Stream?, [@Sendable () -> Void]) in
                if let next = pending?.streams.popLast() { return (next, []) }
                let wakeUps = pending?.wakeUps ?? []
                pending = nil
                return (nil, wakeUps)
            }
            guard let stream else {
                for resume in wakeUps { resume() }
                return
            }
            stream.drainPosted()
        }
    }
}
