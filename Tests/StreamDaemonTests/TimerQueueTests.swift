import StreamEngine
import Testing

@testable import StreamDaemon

/// The daemon's one timer heap: arming, re-arming, disarming, due order, compaction.
@Suite struct TimerQueueTests {
    static func at(_ seconds: Int64) -> StreamTime { StreamTime(nanoseconds: seconds * 1_000_000_000) }

    @Test func popDueReturnsKeysInDeadlineOrderAndOnlyDueOnes() {
        var timers = TimerQueue<String>()
        timers.arm("c", at: Self.at(30))
        timers.arm("a", at: Self.at(10))
        timers.arm("d", at: Self.at(40))
        timers.arm("b", at: Self.at(20))
        #expect(timers.count == 4)
        #expect(timers.earliest() == Self.at(10))
        #expect(timers.popDue(now: Self.at(5)).isEmpty)
        #expect(timers.popDue(now: Self.at(30)) == ["a", "b", "c"])  // at the deadline counts as due
        #expect(timers.count == 1)
        #expect(timers.earliest() == Self.at(40))
        #expect(timers.popDue(now: Self.at(100)) == ["d"])
        #expect(timers.earliest() == nil)
        #expect(timers.count == 0)
        // A popped key is disarmed: it is not due again.
        #expect(timers.popDue(now: Self.at(1000)).isEmpty)
    }

    @Test func reArmingReplacesTheDeadline() {
        var timers = TimerQueue<Int>()
        timers.arm(1, at: Self.at(10))
        timers.arm(2, at: Self.at(20))
        // Later: the old entry is stale and skipped.
        timers.arm(1, at: Self.at(30))
        #expect(timers.earliest() == Self.at(20))
        #expect(timers.popDue(now: Self.at(25)) == [2])
        #expect(timers.popDue(now: Self.at(30)) == [1])
        // Earlier: the new deadline counts.
        timers.arm(3, at: Self.at(50))
        timers.arm(3, at: Self.at(5))
        #expect(timers.earliest() == Self.at(5))
        #expect(timers.popDue(now: Self.at(10)) == [3])
        #expect(timers.popDue(now: Self.at(100)).isEmpty)  // the stale 50s entry is not reported
        // Re-arming with the same deadline keeps one entry.
        timers.arm(4, at: Self.at(7))
        timers.arm(4, at: Self.at(7))
        #expect(timers.heapCount == 1)
        #expect(timers.popDue(now: Self.at(7)) == [4])
    }

    @Test func disarmingRemovesTheDeadline() {
        var timers = TimerQueue<Int>()
        timers.arm(1, at: Self.at(10))
        timers.arm(2, at: Self.at(20))
        timers.arm(1, at: nil)
        #expect(timers.count == 1)
        #expect(timers.earliest() == Self.at(20))
        #expect(timers.popDue(now: Self.at(100)) == [2])
        // Disarming an unknown key is harmless; arming again after disarming works.
        timers.arm(9, at: nil)
        timers.arm(1, at: Self.at(200))
        #expect(timers.popDue(now: Self.at(200)) == [1])
    }

    @Test func staleEntriesAreSkippedEvenWhenThereAreMany() {
        var timers = TimerQueue<Int>()
        // Every key armed at a descending deadline, then re-armed later: the heap's top entries
        // are all stale.
        for key in 0..<50 { timers.arm(key, at: Self.at(Int64(100 - key))) }
        for key in 0..<50 { timers.arm(key, at: Self.at(Int64(1000 + key))) }
        #expect(timers.earliest() == Self.at(1000))
        #expect(timers.popDue(now: Self.at(999)).isEmpty)
        #expect(timers.popDue(now: Self.at(1009)) == Array(0..<10))
        #expect(timers.count == 40)
    }

    @Test func reArmingOneKeyManyTimesKeepsTheHeapSmall() {
        var timers = TimerQueue<Int>()
        timers.arm(-1, at: Self.at(1_000_000))
        var largest = 0
        for round in 0..<10_000 {
            timers.arm(7, at: Self.at(Int64(round % 97 + 1)))
            largest = max(largest, timers.heapCount)
        }
        #expect(timers.count == 2)
        // Compaction starts above 64 entries and keeps at most twice the live ones beyond that.
        #expect(largest <= 65)
        #expect(timers.heapCount <= 65)
        // Disarming many times does not grow it either.
        for _ in 0..<1_000 {
            timers.arm(7, at: nil)
            timers.arm(7, at: Self.at(3))
        }
        #expect(timers.heapCount <= 65)
        #expect(timers.popDue(now: Self.at(10)) == [7])
        #expect(timers.earliest() == Self.at(1_000_000))
    }

    @Test func manyKeysFireInOrder() {
        var timers = TimerQueue<Int>()
        var generator = SystemRandomNumberGenerator()
        var deadlines: [Int: Int64] = [:]
        for key in 0..<2_000 {
            let deadline = Int64.random(in: 1...1_000_000, using: &generator)
            deadlines[key] = deadline
            timers.arm(key, at: StreamTime(nanoseconds: deadline))
        }
        // Re-arm half of them.
        for key in stride(from: 0, to: 2_000, by: 2) {
            let deadline = Int64.random(in: 1...1_000_000, using: &generator)
            deadlines[key] = deadline
            timers.arm(key, at: StreamTime(nanoseconds: deadline))
        }
        var fired: [Int] = []
        var now: Int64 = 0
        while now < 1_000_000 {
            now += 10_000
            fired += timers.popDue(now: StreamTime(nanoseconds: now))
        }
        #expect(fired.count == 2_000)
        #expect(Set(fired).count == 2_000)
        let firedDeadlines = fired.map { deadlines[$0]! }
        // Keys fire within their 10 µs window, in deadline order.
        #expect(firedDeadlines == firedDeadlines.sorted())
        #expect(timers.heapCount == 0)
    }
}
