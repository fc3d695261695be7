/// A FIFO of bytes: appended at the back, consumed from the front, compacted lazily.
struct ByteQueue: Hashable, Sendable {
    private var storage: [UInt8] = []
    private var head = 0

    init(_ bytes: [UInt8] = []) { storage = bytes }

    /// The number of bytes queued.
    var count: Int { storage.count - head }
    var isEmpty: Bool { count == 0 }

    /// The queued bytes, front first.
    var bytes: ArraySlice<UInt8> { storage[head...] }

    mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        storage.append(contentsOf: bytes)
    }

    /// Removes and returns up to `maxCount` bytes from the front.
    mutating func removeFirst(upTo maxCount: Int) -> [UInt8] {
        let n = min(maxCount, count)
        let out = Array(storage[head..<(head + n)])
        drop(n)
        return out
    }

    /// Discards `n` bytes from the front.
    mutating func drop(_ n: Int) {
        precondition(n <= count)
        head += n
        if head == storage.count {
            storage.removeAll(keepingCapacity: storage.capacity <= 1 << 20)
            head = 0
        } else if head >= 64 * 1024 && head * 2 >= storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    static func == (lhs: ByteQueue, rhs: ByteQueue) -> Bool { lhs.bytes == rhs.bytes }
    func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
