import Testing

@testable import StreamDaemon
@testable import StreamEngine

/// The daemon's scheduler against a plain model, over random sequences of enqueues,
/// cancellations, starts, finishes and stream removals: counts agree, each stream's operations
/// start in order within their lane, and nothing stays queued while there is room to start it.
/// (The lost-operation bug of the empty queue without a ring entry fails the last check within
/// a few hundred steps of most seeds.)
@Suite struct OperationSchedulerModelTests {
    typealias Scheduler = OperationScheduler<Int>

    /// What the model knows of one queued operation.
    struct Queued: Equatable {
        var key: Int
        var operation: OperationID
        var lane: Scheduler.Lane
    }

    @Test(arguments: 0..<8) func randomSequencesKeepTheModelsCountsOrderAndLiveness(batch: Int) {
        for seed in UInt64(batch * 50)..<UInt64(batch * 50 + 50) {
            if let failure = Self.run(seed: seed) {
                Issue.record("seed \(seed): \(failure)")
                return
            }
        }
    }

    /// Runs 2,000 random steps; returns the first broken rule, if any.
    static func run(seed: UInt64) -> String? {
        var random = SeededGenerator(seed: seed)
        var configuration = SchedulerConfiguration()
        configuration.maxInFlight = Int.random(in: 1...6, using: &random)
        configuration.maxInFlightReads = Int.random(in: 1...configuration.maxInFlight, using: &random)
        // Poll tokens never run out here (the bucket has its own test): liveness covers polls too.
        configuration.idlePollsPerMinute = 6_000_000
        var scheduler = Scheduler(configuration: configuration, now: .zero)
        var queued: [Queued] = []
        var running: [Queued] = []
        var nextID: UInt64 = 0

        for step in 0..<2_000 {
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<40:
                nextID += 1
                let operation = OperationID(rawValue: nextID)
                let key = Int.random(in: 0..<5, using: &random)
                let lane = [Scheduler.Lane.write, .read, .poll].randomElement(using: &random)!
                let action: StreamAction = lane == .write
                    ? .write(operation, index: nextID, bytes: [1])
                    : .read(operation, channel: .inbound, index: nextID, mode: lane == .poll ? .poll : .wait)
                scheduler.enqueue(key, action)
                queued.append(Queued(key: key, operation: operation, lane: lane))
            case 40..<55:
                // Cancel a queued operation, a running one, or one of the wrong stream.
                let pool = queued + running
                guard let victim = pool.randomElement(using: &random) else { continue }
                let key = Int.random(in: 0..<4, using: &random) == 0 ? (victim.key + 1) % 5 : victim.key
                let removed = scheduler.cancel(key, victim.operation)
                let expected = key == victim.key && queued.contains(victim)
                guard removed == expected else { return "step \(step): cancel returned \(removed), expected \(expected)" }
                if removed { queued.removeAll { $0 == victim } }
            case 55..<80:
                let started = scheduler.start(now: .zero)
                for job in started {
                    let entry = Queued(key: job.key, operation: job.operation, lane: job.lane)
                    guard let position = queued.firstIndex(of: entry) else { return "step \(step): started \(entry), which is not queued" }
                    if job.lane != .poll, queued[..<position].contains(where: { $0.key == job.key && $0.lane == job.lane }) {
                        return "step \(step): stream \(job.key) started \(job.operation) before an older operation of its lane"
                    }
                    queued.remove(at: position)
                    running.append(entry)
                }
                // Liveness: whatever is still queued has no room to start.
                let reads = running.filter { $0.lane != .write }.count
                let full = running.count >= configuration.maxInFlight
                if !full, queued.contains(where: { $0.lane == .write }) { return "step \(step): a write stays queued with room to run" }
                if !full, reads < configuration.maxInFlightReads, queued.contains(where: { $0.lane != .write }) {
                    return "step \(step): a read stays queued with room to run"
                }
            case 80..<95:
                guard !running.isEmpty else { continue }
                let job = running.remove(at: Int.random(in: 0..<running.count, using: &random))
                scheduler.finished(job.lane)
            default:
                let key = Int.random(in: 0..<5, using: &random)
                scheduler.removeAll(for: key)
                queued.removeAll { $0.key == key }
            }
            guard scheduler.queued == queued.count else { return "step \(step): queued \(scheduler.queued), model \(queued.count)" }
            guard scheduler.inFlight == running.count else { return "step \(step): in flight \(scheduler.inFlight), model \(running.count)" }
            let reads = running.filter { $0.lane != .write }.count
            guard scheduler.inFlightReads == reads else { return "step \(step): reads in flight \(scheduler.inFlightReads), model \(reads)" }
        }
        return nil
    }
}
