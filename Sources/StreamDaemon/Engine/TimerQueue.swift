import StreamEngine

/// One timer queue for the whole daemon: a min-heap of stream deadlines.
///
/// Each stream has at most one live entry. Re-arming a stream pushes a new entry with a newer
/// generation; older entries are skipped when they surface (lazy deletion), so re-arming costs
/// O(log n) and no idle stream holds a task or a timer of its own.
struct TimerQueue<Key: Hashable & Sendable>: Sendable {
    private struct Entry: Sendable {
        var deadline: StreamTime
        var key: Key
        var generation: UInt64
    }

    private var heap: [Entry] = []
    private var armed: [Key: (deadline: StreamTime, generation: UInt64)] = [:]
    private var nextGeneration: UInt64 = 0

    /// The number of streams with a deadline.
    var count: Int { armed.count }
    /// The number of heap entries, stale ones included (for tests of the compaction bound).
    var heapCount: Int { heap.count }

    /// Sets `key`'s deadline, replacing any earlier one; `nil` disarms it.
    mutating func arm(_ key: Key, at deadline: StreamTime?) {
        guard let deadline else {
            armed[key] = nil
            compactIfSparse()
            return
        }
        if let current = armed[key], current.deadline == deadline { return }
        nextGeneration += 1
        armed[key] = (deadline, nextGeneration)
        push(Entry(deadline: deadline, key: key, generation: nextGeneration))
        compactIfSparse()
    }

    /// The earliest live deadline.
    mutating func earliest() -> StreamTime? {
        dropStale()
        return heap.first?.deadline
    }

    /// Removes and returns the keys whose deadline is at or before `now`.
    mutating func popDue(now: StreamTime) -> [Key] {
        var due: [Key] = []
        while true {
            dropStale()
            guard let top = heap.first, top.deadline <= now else { break }
            popTop()
            armed[top.key] = nil
            due.append(top.key)
        }
        return due
    }

    private func isLive(_ entry: Entry) -> Bool { armed[entry.key]?.generation == entry.generation }

    private mutating func dropStale() {
        while let top = heap.first, !isLive(top) { popTop() }
    }

    /// Rebuilds the heap when stale entries outnumber live ones, bounding its memory.
    private mutating func compactIfSparse() {
        guard heap.count > 64, heap.count > 2 * armed.count else { return }
        heap = armed.map { Entry(deadline: $0.value.deadline, key: $0.key, generation: $0.value.generation) }
        heap.sort { $0.deadline < $1.deadline }  // a sorted array is a valid min-heap
    }

    private mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count, heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count, heap[right].deadline < heap[smallest].deadline { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
