import Dispatch

/// A one-shot timer that is re-armed in place, for a ``Stream``'s machine deadline.
///
/// Arming reprograms one dispatch timer source (`dispatch_source_set_timer`); nothing is
/// created or cancelled. Each expiry yields to ``ticks``, which one long-lived
/// task of the stream consumes; ticks that pile up while it is busy coalesce into one.
final class ReArmableTimer: @unchecked Sendable {
    // @unchecked: the dispatch source is thread-safe (its setters may be called from any
    // thread) and is never replaced.
    private let source: any DispatchSourceTimer
    private let continuation: AsyncStream<Void>.Continuation
    /// One element per expiry, coalesced; finishes when the timer is cancelled.
    let ticks: AsyncStream<Void>

    init() {
        (ticks, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        source = DispatchSource.makeTimerSource()
        source.setEventHandler { [continuation] in continuation.yield() }
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    /// Fires once, `nanoseconds` from now (at once if not positive), replacing any earlier arming.
    func arm(in nanoseconds: Int64) {
        let delay = DispatchTimeInterval.nanoseconds(Int(clamping: max(0, nanoseconds)))
        source.schedule(deadline: .now() + delay, leeway: .milliseconds(1))
    }

    /// Stops the timer for good and ends ``ticks``.
    func cancel() {
        source.cancel()
        continuation.finish()
    }

    deinit { cancel() }
}
