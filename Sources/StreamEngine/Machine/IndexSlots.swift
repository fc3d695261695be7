/// A small map from box indices to values for indices that lie within a short span, such as
/// the read window: each index has its own slot in a ring, so lookups need no hashing.
///
/// Any indices may be stored: the ring grows (doubling, up to ``maxSlots``) when two indices
/// would share a slot, and beyond that an index goes to a dictionary, so an index span wider
/// than the ring costs speed, never correctness. Iteration visits the entries in slot order
/// (then the dictionary's), which is not index order.
struct IndexSlots<Value>: Sendable where Value: Sendable {
    /// The ring: empty until the first insert (many maps of an idle stream are never used, and
    /// a daemon holds thousands of idle streams), then ``initialSlots`` long or longer.
    private var slots: [(index: UInt64, value: Value)?] = []
    /// The ring's length at its first insert.
    private let initialSlots: Int
    private var overflow: [UInt64: Value] = [:]
    /// The number of entries.
    private(set) var count = 0
    /// At most the lowest index stored (`UInt64.max` when empty): lowered by inserts, raised past
    /// the bound itself when that index is removed, made exact again by ``removeAll(where:)``, so
    /// a caller can tell cheaply that no index is below a bound (entries removed in index order,
    /// as reads complete, keep it exact).
    private(set) var lowestIndexBound = UInt64.max
    /// The most slots the ring grows to.
    static var maxSlots: Int { 4096 }

    /// Creates an empty map with room for a span of at least `span` consecutive indices (the
    /// ring is allocated by the first insert).
    init(span: Int) {
        var capacity = 1
        while capacity < max(span, 1) { capacity <<= 1 }
        initialSlots = capacity
    }

    var isEmpty: Bool { count == 0 }

    @inline(__always)
    private func slot(_ index: UInt64) -> Int { Int(truncatingIfNeeded: index & UInt64(slots.count - 1)) }

    subscript(index: UInt64) -> Value? {
        get {
            guard count > 0 else { return nil }
            if let entry = slots[slot(index)], entry.index == index { return entry.value }
            return overflow.isEmpty ? nil : overflow[index]
        }
        set {
            if let newValue {
                insert(newValue, at: index)
            } else {
                _ = removeValue(at: index)
            }
        }
    }

    /// Changes the value at `index` in place, if there is one (one lookup, where reading and
    /// writing it back would take two).
    ///
    /// - Returns: what `body` returns, or `nil` if `index` holds no value.
    @discardableResult
    mutating func update<R>(at index: UInt64, _ body: (inout Value) -> R) -> R? {
        guard count > 0 else { return nil }
        let s = slot(index)
        if slots[s]?.index == index { return body(&slots[s]!.value) }
        guard !overflow.isEmpty, overflow[index] != nil else { return nil }
        return body(&overflow[index]!)
    }

    /// Removes the value at `index`, returning it if there was one.
    @discardableResult
    mutating func removeValue(at index: UInt64) -> Value? {
        guard count > 0 else { return nil }
        let s = slot(index)
        if let entry = slots[s], entry.index == index {
            slots[s] = nil
            count -= 1
            removedIndex(index)
            return entry.value
        }
        guard !overflow.isEmpty, let value = overflow.removeValue(forKey: index) else { return nil }
        count -= 1
        removedIndex(index)
        return value
    }

    /// Keeps ``lowestIndexBound`` a bound, raising it when the index it names is gone: every
    /// other index is above it.
    private mutating func removedIndex(_ index: UInt64) {
        if count == 0 {
            lowestIndexBound = .max
        } else if index == lowestIndexBound {
            lowestIndexBound = index + 1  // Below `UInt64.max`: a larger index remains.
        }
    }

    private mutating func insert(_ value: Value, at index: UInt64) {
        if slots.isEmpty { slots = Array(repeating: nil, count: initialSlots) }
        lowestIndexBound = min(lowestIndexBound, index)
        if !overflow.isEmpty, overflow[index] != nil {
            overflow[index] = value
            return
        }
        while true {
            let s = slot(index)
            if let entry = slots[s] {
                if entry.index == index {
                    slots[s] = (index, value)
                    return
                }
                if slots.count < Self.maxSlots {
                    grow()
                    continue
                }
                overflow[index] = value
            } else {
                slots[s] = (index, value)
            }
            count += 1
            return
        }
    }

    private mutating func grow() {
        let old = slots
        slots = Array(repeating: nil, count: old.count * 2)
        for case let entry? in old { slots[slot(entry.index)] = entry }
    }

    /// Removes every entry.
    mutating func removeAll() {
        guard count > 0 else { return }
        for s in slots.indices { slots[s] = nil }
        overflow.removeAll()
        count = 0
        lowestIndexBound = .max
    }

    /// The entries, in slot order.
    var entries: [(index: UInt64, value: Value)] {
        guard count > 0 else { return [] }
        return slots.compactMap { $0 } + overflow.map { (index: $0.key, value: $0.value) }
    }

    /// The indices, in slot order.
    var keys: [UInt64] { entries.map(\.index) }

    /// Removes the entries for which `shouldBeRemoved` holds and returns them, in slot order
    /// (then the dictionary's); allocates nothing when none is removed.
    @discardableResult
    mutating func removeAll(where shouldBeRemoved: (UInt64, Value) -> Bool) -> [(index: UInt64, value: Value)] {
        guard count > 0 else { return [] }
        var removed: [(index: UInt64, value: Value)] = []
        var lowest = UInt64.max
        for s in slots.indices {
            guard let entry = slots[s] else { continue }
            if shouldBeRemoved(entry.index, entry.value) {
                slots[s] = nil
                count -= 1
                removed.append(entry)
            } else {
                lowest = min(lowest, entry.index)
            }
        }
        if !overflow.isEmpty {
            for (index, value) in overflow {
                if shouldBeRemoved(index, value) {
                    removed.append((index, value))
                } else {
                    lowest = min(lowest, index)
                }
            }
            for entry in removed where overflow[entry.index] != nil {
                overflow[entry.index] = nil
                count -= 1
            }
        }
        lowestIndexBound = lowest
        return removed
    }

    /// Iterates the entries in slot order (then the dictionary's), allocating nothing.
    struct Iterator: IteratorProtocol {
        fileprivate let slots: [(index: UInt64, value: Value)?]
        fileprivate var position = 0
        fileprivate var overflow: Dictionary<UInt64, Value>.Iterator?

        mutating func next() -> (index: UInt64, value: Value)? {
            while position < slots.count {
                defer { position += 1 }
                if let entry = slots[position] { return entry }
            }
            return overflow?.next().map { (index: $0.key, value: $0.value) }
        }
    }

    /// An iterator over the entries, in slot order (then the dictionary's).
    func makeIterator() -> Iterator {
        Iterator(slots: count > 0 ? slots : [], overflow: overflow.isEmpty ? nil : overflow.makeIterator())
    }

    /// Calls `body` with every entry, in slot order (then the dictionary's), allocating nothing.
    func forEach(_ body: (UInt64, Value) -> Void) {
        guard count > 0 else { return }
        for case let entry? in slots { body(entry.index, entry.value) }
        for (index, value) in overflow { body(index, value) }
    }

    /// Whether any entry satisfies `predicate`.
    func contains(where predicate: (UInt64, Value) -> Bool) -> Bool {
        guard count > 0 else { return false }
        for case let entry? in slots where predicate(entry.index, entry.value) { return true }
        return overflow.contains { predicate($0.key, $0.value) }
    }
}

/// The operations in flight by ``OperationID``, in an ``IndexSlots`` ring: identifiers are
/// issued in order, so those in flight at once lie within a short span.
struct OperationSlots<Value>: Sendable where Value: Sendable {
    private var slots: IndexSlots<Value>
    /// When a value's operation started, if ``earliestStart`` is kept.
    private let startTime: (@Sendable (Value) -> StreamTime)?
    /// The earliest start of the operations held (kept only with a `startTime`), updated as
    /// they come and go: the ring can be wide (reads that wait long while many writes come
    /// and go), too wide to scan whenever the machine asks for its next deadline.
    private(set) var earliestStart: StreamTime?
    /// How many of the operations held started at ``earliestStart``: only when the last of them
    /// goes is the ring scanned for the next earliest (operations started in one step share
    /// their start, and complete about in the order they started).
    private var earliestCount = 0

    /// Creates an empty map; with `startTime`, it keeps ``earliestStart``.
    init(span: Int, startTime: (@Sendable (Value) -> StreamTime)? = nil) {
        slots = IndexSlots(span: span)
        self.startTime = startTime
    }

    var count: Int { slots.count }
    var isEmpty: Bool { slots.isEmpty }

    subscript(operation: OperationID) -> Value? {
        get { slots[operation.rawValue] }
        set {
            guard let newValue else {
                removeValue(forKey: operation)
                return
            }
            let old = startTime == nil ? nil : slots[operation.rawValue]
            slots[operation.rawValue] = newValue
            if let startTime {
                Self.count(startTime(newValue), intoEarliest: &earliestStart, count: &earliestCount)
                if let old { removed(old) }
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey operation: OperationID) -> Value? {
        let value = slots.removeValue(at: operation.rawValue)
        if let value { removed(value) }
        return value
    }

    mutating func removeAll() {
        slots.removeAll()
        earliestStart = nil
        earliestCount = 0
    }

    /// Updates ``earliestStart`` for a value gone: looks for the new earliest only if it was the
    /// last value that started then.
    private mutating func removed(_ value: Value) {
        guard let startTime, startTime(value) == earliestStart else { return }
        earliestCount -= 1
        guard earliestCount == 0 else { return }
        var earliest: StreamTime?
        var count = 0
        forEachValue { Self.count(startTime($0), intoEarliest: &earliest, count: &count) }
        earliestStart = earliest
        earliestCount = count
    }

    /// Folds one start time into a running earliest start and how many values share it.
    private static func count(_ started: StreamTime, intoEarliest earliest: inout StreamTime?, count: inout Int) {
        if let current = earliest, started >= current {
            if started == current { count += 1 }
        } else {
            earliest = started
            count = 1
        }
    }

    /// The entries, in no particular order.
    var entries: [(key: OperationID, value: Value)] { slots.entries.map { (OperationID(rawValue: $0.index), $0.value) } }
    /// The operations, in no particular order.
    var keys: [OperationID] { slots.keys.map { OperationID(rawValue: $0) } }
    /// Calls `body` with every value, in no particular order, allocating nothing.
    func forEachValue(_ body: (Value) -> Void) { slots.forEach { body($1) } }
}
