import Foundation

/// One dedicated OS thread that runs the store's jobs in order, so SQLite calls (and their fsyncs)
/// never occupy a thread of Swift's cooperative pool.
final class StoreThread: @unchecked Sendable {
    // Guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopping = false

    /// Starts the thread.
    init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Queues a job; false once ``stop()`` was called.
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !stopping else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Runs `body` on the thread and returns its result; `.closed` if the thread stopped.
    func run<T: Sendable>(
        _ body: @escaping @Sendable () -> Result<T, StreamStoreError>
    ) async -> Result<T, StreamStoreError> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, StreamStoreError>, Never>) in
            let queued = submit { continuation.resume(returning: body()) }
            if !queued {
                continuation.resume(returning: .failure(StreamStoreError(.closed, "the store is closed")))
            }
        }
    }

    /// Lets the queued jobs finish, then ends the thread; later submissions are refused.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        condition.unlock()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopping { condition.wait() }
            if jobs.isEmpty {
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll()
            condition.unlock()
            for job in batch { job() }
        }
    }
}
