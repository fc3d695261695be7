import NIOCore

/// A one-shot timer on an event loop, freed as soon as it is cancelled: the timeout of a
/// pending request, or a pause of the client's users (``ThinClient/timer(after:_:)``).
///
/// A timer made of a `Task` that sleeps keeps its memory after `cancel()` until the sleep's
/// original deadline: the Swift runtime's delayed job and its dispatch timer stay queued (about
/// 2 KiB a timer, measured). Every request arms one and almost all are cancelled by their
/// reply, so with timeouts of minutes a busy client held thousands of dead timers. An event
/// loop's scheduled task is removed from the loop's queue when cancelled.
public struct RequestTimer: Sendable {
    private let scheduled: Scheduled<Void>

    /// Calls `expire` on `loop` once `delay` has passed, unless ``cancel()`` came first.
    init(after delay: Duration, on loop: any EventLoop, _ expire: @escaping @Sendable () -> Void) {
        scheduled = loop.scheduleTask(in: Self.timeAmount(delay)) { expire() }
    }

    /// Stops the timer; its `expire` is not called (if it has not run already).
    public func cancel() {
        scheduled.cancel()
    }

    /// `delay` as a `TimeAmount`, clamped to 0 ... about 292 years.
    static func timeAmount(_ delay: Duration) -> TimeAmount {
        let (seconds, attoseconds) = delay.components
        guard seconds >= 0 else { return .zero }
        guard seconds < Int64.max / 1_000_000_000 - 1 else { return .nanoseconds(.max) }
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
