extension StreamCheckpoint {
    /// The frames awaiting acknowledgement by index, with a count of each ``FrameKind`` kept as
    /// they are added and removed, so that the questions the machine asks on every input (how
    /// many frames the window counts, whether any frame awaits an answer) need no scan.
    struct RetainedFrames: Sendable, Hashable, Sequence {
        private var frames: [UInt64: RetainedFrame] = [:]
        /// Frames of each kind, by `FrameKind.rawValue`.
        private var kindCounts: (Int, Int, Int, Int) = (0, 0, 0, 0)

        init() {}

        subscript(index: UInt64) -> RetainedFrame? {
            get { frames[index] }
            set {
                if let newValue {
                    if let old = frames.updateValue(newValue, forKey: index) { add(old.kind, -1) }
                    add(newValue.kind, 1)
                } else if let old = frames.removeValue(forKey: index) {
                    add(old.kind, -1)
                }
            }
        }

        private mutating func add(_ kind: FrameKind, _ delta: Int) {
            switch kind {
            case .data: kindCounts.0 += delta
            case .fin: kindCounts.1 += delta
            case .ackOnly: kindCounts.2 += delta
            case .ping: kindCounts.3 += delta
            }
        }

        /// How many retained frames are of `kind`.
        func count(of kind: FrameKind) -> Int {
            switch kind {
            case .data: kindCounts.0
            case .fin: kindCounts.1
            case .ackOnly: kindCounts.2
            case .ping: kindCounts.3
            }
        }

        /// Data and FIN frames: the ones the send window counts.
        var windowCount: Int { kindCounts.0 + kindCounts.1 }
        /// Frames the peer must acknowledge (all but ack-only frames).
        var elicitingCount: Int { frames.count - kindCounts.2 }

        var count: Int { frames.count }
        var isEmpty: Bool { frames.isEmpty }
        var keys: Dictionary<UInt64, RetainedFrame>.Keys { frames.keys }
        var values: Dictionary<UInt64, RetainedFrame>.Values { frames.values }
        func makeIterator() -> Dictionary<UInt64, RetainedFrame>.Iterator { frames.makeIterator() }

        static func == (lhs: Self, rhs: Self) -> Bool { lhs.frames == rhs.frames }
        func hash(into hasher: inout Hasher) { hasher.combine(frames) }
    }
}
