import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import ThinClient

/// `RequestTimer`, the event-loop timer behind every request's timeout: it fires once after its
/// delay, and not at all once cancelled.
@Suite("request timers", .timeLimit(.minutes(1)))
struct RequestTimerTests {
    @Test func firesOnceAfterItsDelay() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let clock = ContinuousClock()
        let start = clock.now
        let (fired, sink) = AsyncStream.makeStream(of: ContinuousClock.Instant.self)
        let timer = RequestTimer(after: .milliseconds(50), on: loop) { sink.yield(clock.now) }
        var instants: [ContinuousClock.Instant] = []
        for await instant in fired {
            instants.append(instant)
            break
        }
        _ = timer
        #expect(instants.count == 1)
        #expect(try #require(instants.first) - start >= .milliseconds(50))
    }

    @Test func aCancelledTimerNeverFires() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let count = Atomic<Int>(0)
        let timer = RequestTimer(after: .milliseconds(30), on: loop) { count.add(1, ordering: .relaxed) }
        timer.cancel()
        try await Task.sleep(for: .milliseconds(150))
        #expect(count.load(ordering: .relaxed) == 0)
    }

    @Test func theClientsTimerFiresOnceAndNotOnceCancelled() async throws {
        let client = ThinClient(configuration: ThinClientConfiguration(dial: .unix(path: "/nonexistent")), group: MultiThreadedEventLoopGroup.singleton)
        let fired = Atomic<Int>(0)
        let cancelled = Atomic<Int>(0)
        let kept = client.timer(after: .milliseconds(20)) { fired.add(1, ordering: .relaxed) }
        let stopped = client.timer(after: .milliseconds(20)) { cancelled.add(1, ordering: .relaxed) }
        stopped.cancel()
        try await Task.sleep(for: .milliseconds(200))
        _ = kept
        #expect(fired.load(ordering: .relaxed) == 1)
        #expect(cancelled.load(ordering: .relaxed) == 0)
    }

    @Test func durationsBecomeTimeAmounts() {
        #expect(RequestTimer.timeAmount(.milliseconds(1500)) == .milliseconds(1500))
        #expect(RequestTimer.timeAmount(.seconds(-1)) == .zero)
        #expect(RequestTimer.timeAmount(.seconds(Int64.max)) == .nanoseconds(.max))
    }
}
