extension StreamCheckpoint {
    /// The frames awaiting acknowledgement by index, with a count of each ``FrameKind`` kept as
    /// they are added and removed, so that the questions the machine asks on every input (how
    /// many frames the window counts, whether any frame awaits an answer) need no scan.
    struct RetainedFrames: Sendable, Hashable, Sequence {
        /// By frame index, in a ring: the retained frames' indices lie within a short span
        /// (the window and the acknowledgements not yet answered), so lookups need no hashing.
        private var frames = IndexSlots<RetainedFrame>(span: 32)
        /// Frames of each kind, by `FrameKind.rawValue`.
        private var kindCounts: (Int, Int, Int, Int) = (0, 0, 0, 0)

        init() {}

        subscript(index: UInt64) -> RetainedFrame? {
            get { frames[index] }
            set {
                if let newValue {
                    if let old = frames[index] { add(old.kind, -1) }
                    frames[index] = newValue
                    add(newValue.kind, 1)
                } else if let old = frames.removeValue(at: index) {
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
        /// The indices, in no particular order.
        var keys: [UInt64] { frames.keys }
        /// The frames, in no particular order.
        var values: [RetainedFrame] { frames.entries.map(\.value) }

        /// Iterates the frames with their indices, in no particular order, allocating nothing.
        struct Iterator: IteratorProtocol {
            fileprivate var base: IndexSlots<RetainedFrame>.Iterator
            mutating func next() -> (key: UInt64, value: RetainedFrame)? {
                base.next().map { (key: $0.index, value: $0.value) }
            }
        }

        func makeIterator() -> Iterator { Iterator(base: frames.makeIterator()) }

        /// Calls `body` with every index and frame, in no particular order, allocating nothing.
        func forEach(_ body: (UInt64, RetainedFrame) -> Void) { frames.forEach(body) }

        /// The frames in index order, for comparing and hashing (the ring's order depends on its history).
        private var sortedEntries: [(index: UInt64, value: RetainedFrame)] { frames.entries.sorted { $0.index < $1.index } }

        static func == (lhs: Self, rhs: Self) -> Bool {
            guard lhs.count == rhs.count else { return false }
            return lhs.sortedEntries.elementsEqual(rhs.sortedEntries) { $0.index == $1.index && $0.value == $1.value }
        }

        func hash(into hasher: inout Hasher) {
            hasher.combine(count)
            for (index, frame) in sortedEntries {
                hasher.combine(index)
                hasher.combine(frame)
            }
        }
    }
}
