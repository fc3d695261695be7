import Testing
@testable import StreamEngine

/// `ByteQueue`, the ring the write and read buffers are kept in, against a plain array given
/// the same appends and drops: wrapping around the end of its storage, growing while wrapped,
/// and copies that span the wrap.
@Suite struct ByteQueueTests {
    @Test func matchesAnArrayThroughWrapsAndGrowth() {
        var random = SplitMix64(seed: 7)
        var queue = ByteQueue()
        var model: [UInt8] = []
        var next: UInt8 = 0
        for _ in 0..<20_000 {
            if random.next() % 2 == 0 {
                // Sizes around the ring's: appends that wrap, and some that make it grow.
                let n = Int(random.next() % (random.next() % 8 == 0 ? 5_000 : 300))
                let bytes = (0..<n).map { _ in
                    next &+= 1
                    return next
                }
                if random.next() % 2 == 0 { queue.append(contentsOf: bytes) } else { queue.append(contentsOf: bytes[...]) }
                model += bytes
            } else {
                let n = Int(random.next() % UInt64(model.count + 1))
                queue.drop(n)
                model.removeFirst(n)
            }
            #expect(queue.count == model.count)
            #expect(queue.isEmpty == model.isEmpty)
            let offset = Int(random.next() % UInt64(model.count + 1))
            let n = Int(random.next() % UInt64(model.count - offset + 1))
            #expect(queue.copy(from: offset, count: n) == Array(model[offset..<(offset + n)]))
        }
        #expect(queue.bytes == model)
        #expect(queue == ByteQueue(model))
    }

    @Test func staysUsableAfterEmptyingALargeRing() {
        var queue = ByteQueue()
        queue.append(contentsOf: [UInt8](repeating: 1, count: 3 << 20))
        queue.drop(3 << 20)
        #expect(queue.isEmpty && queue.bytes.isEmpty)
        queue.append(contentsOf: [1, 2, 3])
        #expect(queue.bytes == [1, 2, 3])
        #expect(queue.copy(from: 1, count: 2) == [2, 3])
    }
}
