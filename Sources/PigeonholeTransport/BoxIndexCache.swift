import ThinClient

/// The cached BACAP indexes of one channel, saved in a checkpoint so that a restarted stream
/// does not walk the index chain again.
///
/// Entries map a 0-based box number to its 104-byte BACAP `MessageBoxIndex`. Index bytes are
/// key material: store snapshots like the writer seed itself.
public struct BoxIndexSnapshot: Sendable, Hashable {
    /// The box numbers and their index bytes.
    public var anchors: [UInt64: [UInt8]]

    /// Creates a snapshot from box numbers and index bytes.
    public init(anchors: [UInt64: [UInt8]]) {
        self.anchors = anchors
    }
}

/// A bounded cache from box numbers to BACAP indexes.
///
/// Indexes can only be derived forwards, one step per `next_message_box_index`, so reaching box
/// *i* means stepping from the closest known index below it. The cache keeps:
/// - the first index (box 0), always;
/// - sparse **anchors** at multiples of an interval. When there are more than
///   `maxAnchors`, the interval doubles and every other anchor is dropped, so the whole history
///   stays covered and reaching any old box costs at most one interval of steps;
/// - a window of **recent** exact entries (the highest box numbers seen), for the active part
///   of the stream.
struct BoxIndexCache: Sendable {
    let first: MessageBoxIndex
    let maxAnchors: Int
    let maxRecent: Int
    private(set) var interval: UInt64
    private var anchors: [UInt64: MessageBoxIndex] = [:]
    private var anchorKeys: [UInt64] = []  // sorted
    private var recent: [UInt64: MessageBoxIndex] = [:]
    /// How far below a box number ``closest(atOrBelow:)`` probes the recent entries one by one.
    static let probeDistance: UInt64 = 64

    init(first: MessageBoxIndex, interval: UInt64 = 64, maxAnchors: Int = 1024, maxRecent: Int = 512) {
        self.first = first
        self.interval = max(1, interval)
        self.maxAnchors = max(2, maxAnchors)
        self.maxRecent = max(1, maxRecent)
    }

    /// The index of box `number` if cached.
    func exact(_ number: UInt64) -> MessageBoxIndex? {
        if number == 0 { return first }
        return recent[number] ?? anchors[number]
    }

    /// The closest cached box at or below `number`.
    func closest(atOrBelow number: UInt64) -> (number: UInt64, index: MessageBoxIndex) {
        var best: (UInt64, MessageBoxIndex) = (0, first)
        // Binary search for the greatest anchor key <= number.
        var low = 0
        var high = anchorKeys.count
        while low < high {
            let mid = (low + high) / 2
            if anchorKeys[mid] <= number { low = mid + 1 } else { high = mid }
        }
        if low > 0, let index = anchors[anchorKeys[low - 1]], anchorKeys[low - 1] > best.0 {
            best = (anchorKeys[low - 1], index)
        }
        // The recent entries are the highest box numbers seen, and a lookup is usually a little
        // past one of them: probe downwards first, and scan the whole window only if that fails.
        let floor = best.0 &+ 1
        guard number >= floor else { return best }
        let probeEnd = number - floor < Self.probeDistance ? floor : number - Self.probeDistance
        var key = number
        while true {
            if let index = recent[key] { return (key, index) }
            if key == probeEnd { break }
            key -= 1
        }
        guard probeEnd > floor else { return best }
        for (key, index) in recent where key < probeEnd && key > best.0 {
            best = (key, index)
        }
        return best
    }

    /// Records the index of box `number`.
    mutating func insert(_ number: UInt64, _ index: MessageBoxIndex) {
        guard number > 0 else { return }
        recent[number] = index
        if recent.count > 2 * maxRecent {
            let keep = Set(recent.keys.sorted().suffix(maxRecent))
            recent = recent.filter { keep.contains($0.key) }
        }
        if number % interval == 0 && anchors[number] == nil {
            anchors[number] = index
            let position = anchorKeys.firstIndex(where: { $0 > number }) ?? anchorKeys.count
            anchorKeys.insert(number, at: position)
            while anchorKeys.count > maxAnchors {
                thin()
            }
        }
    }

    /// Doubles the anchor interval and drops the anchors that no longer fall on it.
    private mutating func thin() {
        interval *= 2
        anchorKeys = anchorKeys.filter { $0 % interval == 0 }
        anchors = anchors.filter { $0.key % interval == 0 }
    }

    /// Every anchor and recent entry (box 0 excluded: it is part of the capability).
    var snapshot: BoxIndexSnapshot {
        var entries: [UInt64: [UInt8]] = [:]
        for (key, index) in anchors { entries[key] = index.bytes }
        // The frontier of the recent window is the most useful entry after a restart.
        if let top = recent.keys.max(), let index = recent[top] { entries[top] = index.bytes }
        return BoxIndexSnapshot(anchors: entries)
    }

    /// Whether `index` can be the index of box `number` of this channel: its `Idx64` counter
    /// must be the first index's counter plus `number` (the counter advances by one per box).
    func isConsistent(_ number: UInt64, _ index: MessageBoxIndex) -> Bool {
        index.counter == first.counter &+ number
    }
}
