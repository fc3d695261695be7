import IPC
import StreamClient
import Synchronization
import Testing

@testable import StreamDaemon

/// Requests that wait on a stream's state (`read` with wait, `consume`, `sync`, `close`).
@Suite(.timeLimit(.minutes(2)))
struct StreamWaiterTests {
    /// A counter and a switch shared by the waiting tasks and the test.
    final class Gate: Sendable {
        let isOpen = Atomic<Bool>(false)
        let finished = Atomic<Int>(0)
    }

    /// Hundreds of waiters woken again and again, all at once, are never lost.
    ///
    /// Regression: a waiter registered its continuation in a closure that did not capture the
    /// host. Swift 6.3 runs such a closure off the actor, so registrations woken together raced
    /// on the stream's waiter list and one could vanish: its request was never answered
    /// (`DaemonIntegrationTests.twoStreamsCarryDataBothWays` hung in about 1 run in 10).
    @Test func waitersWokenTogetherAreNeverLost() async throws {
        let directory = TemporaryDirectory()
        let daemon = try await DaemonHarness.start(DaemonHarness.configuration(in: directory.path))
        let client = try await daemon.client()
        _ = try await client.create("s")
        let host = daemon.probe.host
        let name = try StreamName("s")
        let gate = Gate()
        let waiters = 400
        // Unstructured tasks, so that a lost waiter fails the test instead of hanging it.
        for _ in 0..<waiters {
            Task {
                try? await host.waitUntil(name) { _ in gate.isOpen.load(ordering: .acquiring) }
                gate.finished.add(1, ordering: .releasing)
            }
        }
        for _ in 0..<200 {
            await host.wakeAll(name)
            await Task.yield()
        }
        gate.isOpen.store(true, ordering: .releasing)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while gate.finished.load(ordering: .acquiring) < waiters, clock.now < deadline {
            await host.wakeAll(name)
            try await Task.sleep(for: .milliseconds(20))
        }
        let finished = gate.finished.load(ordering: .acquiring)
        #expect(finished == waiters, "\(waiters - finished) of \(waiters) waiters were lost")
        await client.close()
        await daemon.stop()
    }
}
