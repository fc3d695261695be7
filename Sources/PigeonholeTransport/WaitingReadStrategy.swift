/// How a ``BoxReadMode/wait`` read of a Pigeonhole box waits for the box to be written.
///
/// A read the daemon retries until the box exists costs a send tick per retry, and the courier
/// caches a stale BoxIDNotFound for each envelope (5 min, refreshed only 5 times), so a read
/// left on one envelope can see its box minutes late. Both strategies re-encrypt: every attempt
/// uses a fresh `encrypt_read`, hence a fresh envelope and courier cache entry.
public enum WaitingReadStrategy: Sendable, Hashable {
    /// Polls with `no_retry_on_box_id_not_found` (one send tick each) on a schedule measured in
    /// round trips. The default: it costs fewer ticks for the same latency.
    case poll(PollSchedule)
    /// Lets the daemon retry until the box is written, and re-issues the read with a fresh
    /// envelope every `every`.
    case reissue(every: Duration)
}

/// When a waiting read polls again: pauses that grow from a few round trips to a cap, and how
/// far past the boxes known to be written a channel polls at all.
///
/// Pauses are counted in the thin client's smoothed round trip (SRTT), so the same schedule
/// suits a real mixnet (seconds) and a local simulator (milliseconds), clamped to
/// `shortest...longest`.
///
/// A reader keeps several boxes read ahead, but a writer fills them in order, so polls of boxes
/// far past the last one found written are almost always answered "not yet" (each costs two
/// send ticks). Waiting reads of one channel therefore poll only within ``ahead`` boxes of its
/// *frontier*: the box after the highest one found written, or the lowest box waited for if
/// that is higher. The lowest and the highest boxes waited for always poll (the highest finds
/// a writer that went on past a burst of lost boxes). Reads further ahead wait without
/// polling until the frontier reaches them (a box found written moves it), then follow the
/// schedule from its first poll. And when a box is found, the paused read of the box after it
/// polls at once and starts its schedule over: a writer fills boxes in order, so in a bulk
/// transfer that box is most likely written too (at a low rate this costs one early poll per box).
public struct PollSchedule: Sendable, Hashable {
    /// The first pause, in round trips.
    public var firstPause: Double
    /// The longest pause, in round trips.
    public var maxPause: Double
    /// The factor each pause grows by.
    public var multiplier: Double
    /// The shortest pause in time.
    public var shortest: Duration
    /// The longest pause in time.
    public var longest: Duration
    /// How many boxes from a channel's frontier waiting reads poll (at least 1; `Int.max`: all).
    public var ahead: Int

    /// Creates a schedule; by default 1, 2, 4, 4, … round trips, within 20 ms…60 s, every box
    /// read ahead polling (no frontier).
    ///
    /// A frontier (`ahead` 2: the next box, and one past it in case that one was lost) saves
    /// ticks on a paced mixnet; streamd sets it (`[poll] ahead`). It is off in this default so
    /// that the library's timing-sensitive users keep every read polling unless they ask.
    public init(
        firstPause: Double = 1, maxPause: Double = 4, multiplier: Double = 2, shortest: Duration = .milliseconds(20),
        longest: Duration = .seconds(60), ahead: Int = .max
    ) {
        self.firstPause = max(0, firstPause)
        self.maxPause = max(self.firstPause, maxPause)
        self.multiplier = max(1, multiplier)
        self.shortest = max(.zero, shortest)
        self.longest = max(self.shortest, longest)
        self.ahead = max(1, ahead)
    }

    /// The pause after `emptyAnswers` empty answers (1 for the first), for a round trip.
    public func pause(after emptyAnswers: Int, roundTrip: Duration) -> Duration {
        var factor = firstPause
        for _ in 1..<max(1, min(emptyAnswers, 64)) where factor < maxPause {
            factor *= multiplier
        }
        let seconds = min(factor, maxPause) * roundTrip.seconds
        let pause = Duration.nanoseconds(Int64(min(seconds, longest.seconds) * 1e9))
        return min(max(pause, shortest), longest)
    }
}

extension Duration {
    /// The duration in (fractional) seconds.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

extension PollSchedule {
    /// The schedule with its time bounds divided by `speedup` (pauses in round trips are
    /// unchanged), for a kpclientd-sim run `speedup` times faster than the network it models.
    public func speededUp(by speedup: Double) -> PollSchedule {
        let k = speedup > 0 && speedup.isFinite ? speedup : 1
        return PollSchedule(
            firstPause: firstPause, maxPause: maxPause, multiplier: multiplier, shortest: shortest * (1 / k), longest: longest * (1 / k),
            ahead: ahead)
    }
}
