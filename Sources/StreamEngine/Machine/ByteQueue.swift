/// A FIFO of bytes in a ring: appended at the back, consumed from the front, never compacted.
///
/// The ring's capacity is a power of two that grows (doubling, the bytes laid out again from
/// the front) only when an append does not fit; consuming bytes moves only the front, so no
/// byte is copied twice while it is queued. The bytes may wrap around the end of the storage:
/// readers copy them out in up to two pieces.
struct ByteQueue: Hashable, Sendable {
    private var storage: [UInt8] = []
    /// Where the front byte lies in `storage`.
    private var head = 0
    /// The number of bytes queued.
    private(set) var count = 0
    /// The capacity kept when the queue empties; a larger ring is given back then.
    private static let retainedCapacity = 1 << 20

    init(_ bytes: [UInt8] = []) { append(contentsOf: bytes) }

    var isEmpty: Bool { count == 0 }

    /// The queued bytes, front first, as one array (a copy).
    var bytes: [UInt8] { copy(from: 0, count: count) }

    /// The smallest power of two that holds `count` bytes (at least 64).
    private static func capacity(for count: Int) -> Int {
        var capacity = 64
        while capacity < count { capacity <<= 1 }
        return capacity
    }

    mutating func append(contentsOf bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { append($0) }
    }

    mutating func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// Appends the bytes of `source`.
    mutating func append(_ source: UnsafeRawBufferPointer) {
        let n = source.count
        guard n > 0 else { return }
        if count + n > storage.count { grow(toHold: count + n) }
        let capacity = storage.count
        let tail = (head + count) & (capacity - 1)
        let first = min(n, capacity - tail)
        storage.withUnsafeMutableBytes { ring in
            let base = ring.baseAddress!
            (base + tail).copyMemory(from: source.baseAddress!, byteCount: first)
            if first < n { base.copyMemory(from: source.baseAddress! + first, byteCount: n - first) }
        }
        count += n
    }

    /// Lays the bytes out from the front of a larger ring.
    private mutating func grow(toHold needed: Int) {
        var larger = [UInt8](repeating: 0, count: Self.capacity(for: needed))
        larger.withUnsafeMutableBytes { copy(from: 0, count: count, into: $0.baseAddress!) }
        storage = larger
        head = 0
    }

    /// Copies `n` bytes starting `offset` bytes behind the front into `destination`.
    ///
    /// - Precondition: `offset + n <= count`.
    func copy(from offset: Int, count n: Int, into destination: UnsafeMutableRawPointer) {
        precondition(offset >= 0 && n >= 0 && offset + n <= count)
        guard n > 0 else { return }
        let capacity = storage.count
        let start = (head + offset) & (capacity - 1)
        let first = min(n, capacity - start)
        storage.withUnsafeBytes { ring in
            let base = ring.baseAddress!
            destination.copyMemory(from: base + start, byteCount: first)
            if first < n { (destination + first).copyMemory(from: base, byteCount: n - first) }
        }
    }

    /// Returns `n` bytes starting `offset` bytes behind the front.
    ///
    /// - Precondition: `offset + n <= count`.
    func copy(from offset: Int, count n: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: n) { buffer, initialized in
            if n > 0 { copy(from: offset, count: n, into: buffer.baseAddress!) }
            initialized = n
        }
    }

    /// Discards `n` bytes from the front.
    mutating func drop(_ n: Int) {
        precondition(n >= 0 && n <= count)
        count -= n
        if count == 0 {
            // Empty: start again at the front (a later append then rarely wraps), and give back a
            // ring grown large for a burst.
            head = 0
            if storage.count > Self.retainedCapacity { storage = [] }
        } else {
            head = (head + n) & (storage.count - 1)
        }
    }

    static func == (lhs: ByteQueue, rhs: ByteQueue) -> Bool { lhs.bytes == rhs.bytes }
    func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
