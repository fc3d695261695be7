/// A point on a monotonic clock, in nanoseconds from an arbitrary origin.
///
/// The state machine never reads a clock itself: every input carries the current time, so a
/// simulation can drive it with a virtual clock.
public struct StreamTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since the clock's origin.
    public var nanoseconds: Int64

    /// Creates a time from nanoseconds.
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// The origin of the clock.
    public static let zero = StreamTime(nanoseconds: 0)

    public static func < (lhs: StreamTime, rhs: StreamTime) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// The time `duration` after `time`.
    public static func + (time: StreamTime, duration: Duration) -> StreamTime {
        StreamTime(nanoseconds: time.nanoseconds &+ duration.nanosecondsClamped)
    }

    /// The duration from `rhs` to `lhs`.
    public static func - (lhs: StreamTime, rhs: StreamTime) -> Duration {
        .nanoseconds(lhs.nanoseconds &- rhs.nanoseconds)
    }

    public var description: String { "\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to the range of `Int64`.
    public var nanosecondsClamped: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        if overflow2 { return seconds < 0 ? .min : .max }
        return sum
    }

    /// Multiplies a duration by a floating-point factor.
    func scaled(by factor: Double) -> Duration {
        .nanoseconds(Int64((Double(nanosecondsClamped) * factor).rounded()))
    }
}
