@testable import StreamEngine
import Testing

/// A listener whose peer has not joined yet: what it costs while it waits.
@Suite struct LoneListenerTests {
    /// Drives one machine alone for `duration`: every write succeeds, polls find nothing, and
    /// waiting reads never return. Returns the box writes it made.
    func writesWhileAlone(for duration: Duration, bytes: Int) throws -> Int {
        var machine = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 1549,
            configuration: StreamConfiguration(), durability: .automatic, now: .zero, randomSeed: 1)
        var now = StreamTime.zero
        _ = try machine.appWrite(Array(repeating: 7, count: bytes), now: now)
        var writes = 0
        let end = now + duration
        while now < end {
            var actions = machine.takeActions()
            while !actions.isEmpty {
                for action in actions {
                    switch action {
                    case .write(let operation, _, _):
                        writes += 1
                        machine.writeCompleted(operation, result: .success(()), now: now)
                    case .read(let operation, _, _, .poll):
                        machine.readCompleted(operation, result: .success(nil), now: now)
                    case .read, .cancel:
                        break
                    }
                }
                actions = machine.takeActions()
            }
            guard let next = machine.nextDeadline else { break }
            now = max(next, now + .milliseconds(1))
            machine.handleTimers(now: now)
        }
        return writes
    }

    /// Every outstanding ping used to be rewritten on each expiry, and one more made, up to 64:
    /// 2,124 box writes in the first hour and 13,540 in 4 h (7 data frames), each a paced tick
    /// on Katzenpost. Older pings now back off on their own, up to 4 timeouts: 1,471 and
    /// 5,915. What remains is mostly the data frames, rewritten once per `maxRetransmitTimeout`.
    @Test func aListenerNobodyJoinedRewritesLess() throws {
        let hour = try writesWhileAlone(for: .seconds(3600), bytes: 10_000)
        let fourHours = try writesWhileAlone(for: .seconds(4 * 3600), bytes: 10_000)
        #expect(hour < 1_600, "\(hour) box writes in the first hour")
        #expect(fourHours < 6_500, "\(fourHours) box writes in 4 h")
    }
}
