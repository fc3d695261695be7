import Logging
import StreamEngine
import Testing

@testable import PigeonholeTransport
@testable import ThinClient

/// Waiting reads poll only near the boxes found written (``PollSchedule/ahead``).
@Suite("poll frontier", .serialized, .timeLimit(.minutes(2)))
struct PollFrontierTests {
    @Test func theFrontierLetsTheLowestBoxAndTheNextFewPoll() {
        var frontier = PollFrontier()
        #expect(frontier.mayPoll(7, ahead: 2))  // nothing waited for: no gate
        for number in UInt64(3)...8 { frontier.startWaiting(number) }
        #expect(frontier.position == 3)
        #expect(frontier.highestWaiting == 8)
        #expect((3...8).filter { frontier.mayPoll($0, ahead: 2) } == [3, 4, 8])
        // Box 4 found while 3 is still missing (a lost write): the gate moves past it.
        frontier.found(4)
        frontier.stopWaiting(4)
        #expect(frontier.position == 5)
        #expect([3, 5, 6, 7, 8].filter { frontier.mayPoll($0, ahead: 2) } == [3, 5, 6, 8])
        frontier.found(3)
        frontier.stopWaiting(3)
        #expect(frontier.lowestWaiting == 5)
        #expect((5...8).filter { frontier.mayPoll($0, ahead: 1) } == [5, 8])
        #expect((5...8).filter { frontier.mayPoll($0, ahead: .max) } == [5, 6, 7, 8])
        frontier.stopWaiting(5)
        frontier.stopWaiting(5)  // more stops than starts are ignored
        #expect(frontier.lowestWaiting == 6)
    }

    /// Reads of boxes 0…5, all empty at first: with `ahead` 2 only boxes 0 and 1 and the
    /// highest, 5, are polled (the others are held without costing a tick), and every read still
    /// returns its box once they are written; without the gate every box is polled.
    @Test(arguments: [2, Int.max]) func readsFarAheadWaitWithoutPolling(ahead: Int) async throws {
        let rtt = Duration.milliseconds(10)
        let (model, client, channel) = try await pollingChannel(rtt: rtt, PollSchedule(firstPause: 1, maxPause: 2, shortest: .milliseconds(5), longest: .milliseconds(50), ahead: ahead), seed: 3)
        let count: UInt64 = 6
        let readers = (0..<count).map { number in Task { try await channel.read(index: number, mode: .wait) } }

        // Until every read has been polled (no gate) or the far ones are held (gate), then 20 RTT more.
        let clock = ContinuousClock()
        let limit = clock.now.advanced(by: .seconds(30))
        while clock.now < limit {
            let polled = await model.counters.readStarts.count
            let held = await channel.heldReadCount
            if ahead == .max ? polled == Int(count) : held == Int(count) - 3 { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        let startsBefore = await model.counters.readStarts
        let heldPolls = (2..<5).map { startsBefore[UInt64($0)] ?? 0 }
        try await Task.sleep(for: rtt * 20)
        let polled = Set(await model.counters.readStarts.keys)
        if ahead == .max {
            #expect(polled == Set(0..<count))
        } else {
            // Boxes 2…4 may have polled once before box 5's read started; held, they poll no more.
            #expect(polled.isSuperset(of: [0, 1, 5]))
            #expect(await channel.heldReadCount == Int(count) - 3)
            let startsAfter = await model.counters.readStarts
            #expect((2..<5).map { startsAfter[UInt64($0)] ?? 0 } == heldPolls)
        }

        for number in 0..<count { await model.store(number, box(channel.payloadSize, UInt8(number))) }
        for (number, reader) in readers.enumerated() {
            #expect(try await reader.value == box(channel.payloadSize, UInt8(number)))
        }
        #expect(await channel.heldReadCount == 0)
        await client.close()
        await model.stop()
    }

    /// Boxes 0…4 lost in a burst while the writer went on to box 5: the read of the highest box
    /// finds it, the frontier moves past the gap, and the reads of the lost boxes poll again
    /// (until the writer rewrites them). Before, reads 2…4 stayed held and box 5 was never read.
    @Test func aBurstOfLostBoxesDoesNotHoldTheReadsBeyondIt() async throws {
        let (model, client, channel) = try await pollingChannel(rtt: .milliseconds(10), PollSchedule(shortest: .milliseconds(5), longest: .milliseconds(50), ahead: 2), seed: 7)
        let count: UInt64 = 6
        let readers = (0..<count).map { number in Task { try await channel.read(index: number, mode: .wait) } }
        while await channel.heldReadCount < 3 { try await Task.sleep(for: .milliseconds(5)) }
        await model.store(5, box(channel.payloadSize, 5))
        #expect(try await readers[5].value == box(channel.payloadSize, 5))
        while await channel.heldReadCount > 0 { try await Task.sleep(for: .milliseconds(5)) }
        for number in 0..<5 { await model.store(UInt64(number), box(channel.payloadSize, UInt8(number))) }
        for number in 0..<5 {
            #expect(try await readers[number].value == box(channel.payloadSize, UInt8(number)))
        }
        await client.close()
        await model.stop()
    }

    /// A read of box 1 paused for an hour after an empty poll polls again as soon as box 0 is
    /// found (here by a poll), and returns box 1: without the wake-up it would not return
    /// within the suite's time limit.
    @Test func findingABoxWakesThePausedReadOfTheNext() async throws {
        let (model, client, channel) = try await pollingChannel(rtt: .milliseconds(10), PollSchedule(shortest: .seconds(3600), longest: .seconds(3600)), seed: 5)
        let next = Task { try await channel.read(index: 1, mode: .wait) }
        while await channel.pausedReadCount < 1 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await model.counters.readStarts[1] == 1)
        await model.store(0, box(channel.payloadSize, 10))
        await model.store(1, box(channel.payloadSize, 11))
        #expect(try await channel.read(index: 0, mode: .poll) == box(channel.payloadSize, 10))
        #expect(try await next.value == box(channel.payloadSize, 11))
        #expect(await model.counters.readStarts[1] == 2)
        #expect(await channel.pausedReadCount == 0)
        await client.close()
        await model.stop()
    }

    /// A paused read that is cancelled ends at once with `.cancelled`.
    @Test func aPausedReadCanBeCancelled() async throws {
        let (model, client, channel) = try await pollingChannel(rtt: .milliseconds(10), PollSchedule(shortest: .seconds(3600), longest: .seconds(3600)), seed: 6)
        let read = Task { try await channel.read(index: 0, mode: .wait) }
        while await channel.pausedReadCount < 1 { try await Task.sleep(for: .milliseconds(5)) }
        read.cancel()
        await #expect(throws: BoxTransportError.self) { try await read.value }
        #expect(await channel.pausedReadCount == 0)
        await client.close()
        await model.stop()
    }

    /// A held read that is cancelled ends at once with `.cancelled`, and frees the frontier.
    @Test func aHeldReadCanBeCancelled() async throws {
        let (model, client, channel) = try await pollingChannel(rtt: .milliseconds(10), PollSchedule(shortest: .milliseconds(5), longest: .milliseconds(50), ahead: 1), seed: 4)
        let low = Task { try await channel.read(index: 0, mode: .wait) }
        let high = Task { try await channel.read(index: 5, mode: .wait) }
        // The lowest and the highest reads poll; one between them, beyond `ahead`, is held.
        while await model.counters.readStarts.count < 2 { try await Task.sleep(for: .milliseconds(5)) }
        let middle = Task { try await channel.read(index: 3, mode: .wait) }
        while await channel.heldReadCount < 1 { try await Task.sleep(for: .milliseconds(5)) }
        middle.cancel()
        await #expect(throws: BoxTransportError.self) { try await middle.value }
        #expect(await channel.heldReadCount == 0)
        #expect(await model.counters.readStarts[3] == nil)
        await model.store(0, box(channel.payloadSize, 9))
        await model.store(5, box(channel.payloadSize, 8))
        #expect(try await low.value == box(channel.payloadSize, 9))
        #expect(try await high.value == box(channel.payloadSize, 8))
        await client.close()
        await model.stop()
    }

    /// A channel over a thin client to a model kpclientd (round trip `rtt`, no request
    /// deadlines, λP 1/ms) whose waiting reads poll on `schedule`.
    private func pollingChannel(rtt: Duration, _ schedule: PollSchedule, seed number: UInt8) async throws -> (ModelDaemon, ThinClient, PigeonholeBoxChannel) {
        let model = ModelDaemon(rtt: rtt, dedupTTL: .seconds(60))
        var configuration = ThinClientConfiguration(dial: try await model.start())
        configuration.logger.logLevel = .error
        configuration.fallbackLambdaP = 1
        configuration.operationDeadline = nil
        let client = try await ThinClient.connect(configuration: configuration)
        var transport = PigeonholeTransportConfiguration()
        transport.waitingReads = .poll(schedule)
        let channel = try await PigeonholeBoxStore(client: client, configuration: transport).pigeonholeChannel(.writerSeed(seed(number)))
        return (model, client, channel)
    }
}
