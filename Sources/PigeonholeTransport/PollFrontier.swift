/// Where a channel's waiting reads poll: near the highest box found written.
///
/// Plain state of one ``PigeonholeBoxChannel``; see ``PollSchedule/ahead``.
struct PollFrontier: Sendable {
    /// The highest box a read of this channel found written.
    private(set) var highestFound: UInt64?
    /// Boxes with a waiting read in progress, with how many.
    private var waiting: [UInt64: Int] = [:]

    /// The lowest box a waiting read is in progress for.
    var lowestWaiting: UInt64? { waiting.keys.min() }

    /// The first box not known to be written, as far as polling is concerned: the box after the
    /// highest one found, or the lowest box waited for if that is higher.
    var position: UInt64 {
        let next = highestFound.map { $0 == .max ? $0 : $0 + 1 } ?? 0
        return max(next, lowestWaiting ?? 0)
    }

    /// The highest box a waiting read is in progress for.
    var highestWaiting: UInt64? { waiting.keys.max() }

    /// Whether a waiting read of box `number` may poll now: it is the lowest or the highest box
    /// waited for, or within `ahead` boxes of ``position``.
    ///
    /// The highest read polls so that a burst of lost boxes cannot hold the channel: when boxes
    /// n…n+k are lost (a kpclientd restarted without its store, writes dropped with a
    /// connection) and the writer went on past them, the reads just past the frontier find
    /// nothing, and only a read beyond the gap finds the writer's newer frames, whose
    /// acknowledgements tell it what to resend. Without it, each lost box waited for one
    /// retransmission timeout of the writer's.
    func mayPoll(_ number: UInt64, ahead: Int) -> Bool {
        guard let lowest = lowestWaiting, number > lowest, number != highestWaiting else { return true }
        let start = position
        return number < start || number - start < UInt64(max(1, ahead))
    }

    mutating func startWaiting(_ number: UInt64) { waiting[number, default: 0] += 1 }

    mutating func stopWaiting(_ number: UInt64) {
        guard let count = waiting[number] else { return }
        waiting[number] = count > 1 ? count - 1 : nil
    }

    /// Box `number` was found written.
    mutating func found(_ number: UInt64) {
        highestFound = max(highestFound ?? number, number)
    }
}
