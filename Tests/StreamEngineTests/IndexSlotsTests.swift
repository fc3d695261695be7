import Testing
@testable import StreamEngine

/// `IndexSlots`, the ring the machine keeps its per-index and per-operation state in, against a
/// dictionary given the same operations: within its span, beyond it (growth), and beyond its
/// largest ring (the overflow dictionary).
@Suite struct IndexSlotsTests {
    /// Applies a random mix of inserts, replacements, removals and filtered removals to both and
    /// compares every observable after each step.
    func checkAgainstDictionary(span: Int, indexRange: ClosedRange<UInt64>, steps: Int, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var slots = IndexSlots<Int>(span: span)
        var model: [UInt64: Int] = [:]
        for step in 0..<steps {
            let index = indexRange.lowerBound + random.next() % (indexRange.upperBound - indexRange.lowerBound + 1)
            switch random.next() % 10 {
            case 0..<5:
                slots[index] = step
                model[index] = step
            case 5..<8:
                #expect(slots.removeValue(at: index) == model.removeValue(forKey: index))
            case 8:
                let bound = indexRange.lowerBound + random.next() % (indexRange.upperBound - indexRange.lowerBound + 1)
                let removed = slots.removeAll { candidate, _ in candidate < bound }
                let expected = model.filter { $0.key < bound }
                model = model.filter { $0.key >= bound }
                #expect(removed.count == expected.count)
                #expect(removed.allSatisfy { expected[$0.index] == $0.value })
                #expect(slots.lowestIndexBound == (model.keys.min() ?? .max))
            case 9 where step % 2 == 0:
                let updated = slots.update(at: index) { value -> Int in
                    value += 1
                    return value
                }
                if model[index] != nil { model[index]! += 1 }
                #expect(updated == model[index])
            default:
                slots[index] = nil
                model[index] = nil
            }
            #expect(slots.count == model.count)
            #expect(slots.isEmpty == model.isEmpty)
            #expect(slots[index] == model[index])
            #expect(slots.lowestIndexBound <= (model.keys.min() ?? .max))
        }
        #expect(Dictionary(uniqueKeysWithValues: slots.entries.map { ($0.index, $0.value) }) == model)
        #expect(slots.keys.sorted() == model.keys.sorted())
        var visited: [UInt64: Int] = [:]
        slots.forEach { visited[$0] = $1 }
        #expect(visited == model)
        #expect(slots.contains { index, _ in index == model.keys.first } == !model.isEmpty)
        slots.removeAll()
        #expect(slots.isEmpty && slots.entries.isEmpty && slots.lowestIndexBound == .max)
    }

    @Test func matchesADictionaryWithinItsSpan() {
        checkAgainstDictionary(span: 18, indexRange: 1_000...1_017, steps: 5_000, seed: 1)
    }

    @Test func growsWhenIndicesSpreadBeyondItsSpan() {
        checkAgainstDictionary(span: 4, indexRange: 0...300, steps: 5_000, seed: 2)
    }

    @Test func overflowsIntoADictionaryBeyondItsLargestRing() {
        // Indices that collide in every ring up to the largest.
        checkAgainstDictionary(span: 2, indexRange: 0...(UInt64(IndexSlots<Int>.maxSlots) * 8), steps: 20_000, seed: 3)
        var slots = IndexSlots<Int>(span: 1)
        let stride = UInt64(IndexSlots<Int>.maxSlots)
        for k in UInt64(0)..<50 { slots[k * stride] = Int(k) }
        #expect(slots.count == 50)
        for k in UInt64(0)..<50 { #expect(slots[k * stride] == Int(k)) }
        #expect(slots.removeAll { index, _ in index % (2 * stride) == 0 }.count == 25)
        #expect(slots.count == 25 && slots.lowestIndexBound == stride)
    }

    @Test func operationSlotsKeyByOperation() {
        var operations = OperationSlots<String>(span: 4)
        for raw in UInt64(1)...40 { operations[OperationID(rawValue: raw)] = "op\(raw)" }
        #expect(operations.count == 40)
        #expect(operations.removeValue(forKey: OperationID(rawValue: 7)) == "op7")
        #expect(operations[OperationID(rawValue: 7)] == nil && operations[OperationID(rawValue: 8)] == "op8")
        #expect(operations.keys.sorted() == (UInt64(1)...40).filter { $0 != 7 }.map { OperationID(rawValue: $0) })
        var values: [String] = []
        operations.forEachValue { values.append($0) }
        #expect(values.count == 39)
        operations.removeAll()
        #expect(operations.isEmpty)
    }

    @Test func operationSlotsKeepTheEarliestStart() {
        // Starts out of order and repeated, in a ring that grows wide: the earliest start
        // must always equal a scan's.
        var operations = OperationSlots<StreamTime>(span: 2) { $0 }
        var random = SplitMix64(seed: 9)
        var live: [UInt64: StreamTime] = [:]
        for raw in UInt64(1)...3000 {
            let started = StreamTime(nanoseconds: Int64(random.next() % 50))
            operations[OperationID(rawValue: raw)] = started
            live[raw] = started
            if random.next() % 3 != 0, let victim = live.keys.sorted().dropLast(live.count / 4).last {
                #expect(operations.removeValue(forKey: OperationID(rawValue: victim)) == live.removeValue(forKey: victim))
            }
            if raw % 97 == 0, let some = live.keys.min() {
                operations[OperationID(rawValue: some)] = StreamTime(nanoseconds: 60)  // Replaced in place.
                live[some] = StreamTime(nanoseconds: 60)
            }
            #expect(operations.earliestStart == live.values.min())
        }
        operations.removeAll()
        #expect(operations.earliestStart == nil)
    }

    /// A map nobody has inserted into (its ring is allocated by the first insert) answers every
    /// query as empty, and works as before once used.
    @Test func anUnusedMapAnswersWithoutItsRing() {
        var slots = IndexSlots<Int>(span: 16)
        #expect(slots[3] == nil)
        #expect(slots.removeValue(at: 3) == nil)
        #expect(slots.update(at: 3) { $0 } == nil)
        #expect(slots.removeAll { _, _ in true }.isEmpty)
        #expect(slots.entries.isEmpty)
        #expect(!slots.contains { _, _ in true })
        var visited = 0
        slots.forEach { _, _ in visited += 1 }
        var iterator = slots.makeIterator()
        while iterator.next() != nil { visited += 1 }
        #expect(visited == 0)
        slots.removeAll()
        #expect(slots.isEmpty && slots.lowestIndexBound == .max)
        slots[3] = 30
        slots[19] = 190  // the same slot as 3 in a ring of 16: the ring grows
        #expect(slots[3] == 30 && slots[19] == 190 && slots.count == 2)
        #expect(slots.lowestIndexBound == 3)
        #expect(Set(slots.keys) == [3, 19])
    }
}
