@testable import StreamEngine
import StreamEngineTesting
import Testing

@Suite struct MachineTests {
    @Test func exchangesDataAndClosesBothWays() throws {
        var pair = try MachinePair()
        let message = (0..<5000).map { UInt8($0 % 251) }
        try pair.ends[0].appWrite(message, now: pair.now)
        try pair.ends[0].appClose(now: pair.now)
        pair.settle()
        pair.advance(by: .milliseconds(200))  // delayed acknowledgement
        #expect(pair.ends[1].appRead(maxLength: 10_000, now: pair.now) == message)
        #expect(pair.ends[1].isReadFinished)
        #expect(pair.ends[0].isClosed)
        #expect(!pair.ends[1].isClosed)  // half-close: the other direction stays open
        try pair.ends[1].appWrite([42], now: pair.now)
        try pair.ends[1].appClose(now: pair.now)
        pair.settle()
        pair.advance(by: .milliseconds(200))
        #expect(pair.ends[0].appRead(maxLength: 10, now: pair.now) == [42])
        #expect(pair.ends[0].isReadFinished && pair.ends[1].isClosed)
    }

    @Test func delayedAckTimerSendsAnAckOnlyFrame() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite([1, 2, 3], now: pair.now)
        pair.settle()
        #expect(!pair.ends[0].isWriteSettled)
        #expect(pair.ends[1].nextDeadline == pair.now + StreamConfiguration().ackDelay)
        pair.advance(by: StreamConfiguration().ackDelay)
        #expect(pair.ends[0].isWriteSettled)
        #expect(pair.boxes[1][0] != nil)  // the dialer's ack-only frame
    }

    @Test func lostAckOnlyFrameIsSkippedByTheReader() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite([1], now: pair.now)
        pair.settle()
        pair.advance(by: .milliseconds(100))
        // The dialer's ack frame 0 is lost.
        pair.boxes[1][0] = nil
        try pair.ends[1].appWrite([9, 9], now: pair.now)  // frame 1 carries data and the ack again
        pair.settle()
        #expect(pair.ends[0].appRead(maxLength: 10, now: pair.now) == [9, 9])
        #expect(pair.ends[0].checkpoint.nextReadIndex == 2)
        #expect(pair.ends[0].isWriteSettled)
    }

    @Test func nothingIsSentBeforeItIsDurable() throws {
        var pair = try MachinePair(durability: .explicit)
        let (_, sequence) = try pair.ends[0].appWrite([1, 2, 3], now: pair.now)
        #expect(pair.ends[0].takeWrites().isEmpty)
        let journal = pair.ends[0].takeJournal()
        #expect(journal.map(\.sequence) == [1, 2])
        #expect(sequence == 1)
        #expect(pair.ends[0].durableSequence == 0)
        pair.ends[0].markDurable(through: 1, now: pair.now)
        #expect(pair.ends[0].takeWrites().isEmpty)  // the frame's creation (record 2) is not durable yet
        pair.ends[0].markDurable(through: 2, now: pair.now)
        // The first write and, the stream being quiet, its confirmation copies.
        #expect(pair.ends[0].takeWrites().map(\.1) == [0, 0, 0])
    }

    @Test func idlePollingBacksOffAndActivityResetsIt() throws {
        var configuration = StreamConfiguration()
        configuration.idleAfter = .seconds(10)
        configuration.minIdlePollInterval = .seconds(1)
        configuration.maxIdlePollInterval = .seconds(8)
        var pair = try MachinePair(configuration: configuration)
        pair.settle()
        pair.advance(by: .seconds(11))  // both ends go idle and poll
        var intervals: [Duration] = []
        var last = pair.now
        for _ in 0..<8 {
            guard let deadline = pair.ends[1].nextDeadline else { break }
            pair.now = deadline
            pair.ends[1].handleTimers(now: pair.now)
            let polls = pair.ends[1].takeActions().filter {
                if case .read(_, _, _, .poll) = $0 { return true }
                return false
            }
            for case .read(let operation, _, _, _) in polls {
                pair.ends[1].readCompleted(operation, result: .success(nil), now: pair.now)
            }
            intervals.append(pair.now - last)
            last = pair.now
        }
        // 1, 2, 4, 8, 8 ... seconds, each with up to 25 % jitter.
        #expect(intervals.count == 8)
        for (number, interval) in intervals.enumerated() {
            let base = Duration.seconds(min(1 << number, 8))
            #expect(interval >= base && interval <= base * 1.25 + .milliseconds(1), "poll \(number): \(interval) in \(intervals)")
        }
        // The next poll finds the peer's data; that activity switches back to blocking reads
        // of the whole window.
        try pair.ends[0].appWrite([5], now: pair.now)
        pair.settle()
        #expect(pair.ends[1].appRead(maxLength: 1, now: pair.now) == [])
        pair.now = pair.ends[1].nextDeadline!
        pair.ends[1].handleTimers(now: pair.now)
        let actions = pair.settle()
        #expect(pair.ends[1].appRead(maxLength: 1, now: pair.now) == [5])
        let waits = actions.filter { if case .read(_, .inbound, _, .wait) = $0 { true } else { false } }
        #expect(waits.count >= configuration.readAhead - 1)
    }

    @Test func ackBeyondWhatWasSentIsAProtocolViolation() throws {
        var pair = try MachinePair()
        pair.settle()
        // The dialer forges a frame acknowledging listener frames that were never sent.
        let keys = try StreamAddress(.endToEnd(secret: vectorSecret)).keys(as: .dialer)
        let forged = FrameSealer(outbound: keys.outbound!, boxSize: 512).seal(Frame(index: 0, dataOffset: 0, cumulativeAck: 5))
        pair.boxes[1][0] = forged
        pair.advance(by: .seconds(1))
        pair.settle()
        #expect(pair.ends[0].failure?.code == .protocolViolation)
        #expect(pair.ends[0].failure?.message.contains("only 0 were sent") == true)
        #expect(throws: StreamError.self) { try pair.ends[0].appWrite([1], now: pair.now) }
    }

    @Test func persistentDecryptFailureIsSurfaced() throws {
        var configuration = StreamConfiguration()
        configuration.maxDecryptFailures = 3
        var pair = try MachinePair(configuration: configuration)
        pair.boxes[1][0] = Array(repeating: 0xee, count: 512)  // garbage in the listener's next box
        for _ in 0..<10 where pair.ends[0].failure == nil {
            pair.settle()
            pair.advance(by: .seconds(5))
        }
        #expect(pair.ends[0].failure?.code == .frameDecrypt)
        #expect(pair.ends[0].failure?.message.contains("3 times") == true)
    }

    @Test func boxHoldingOtherDataIsATransportError() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite([1], now: pair.now)
        let (operation, _, _) = pair.ends[0].takeWrites()[0]
        pair.ends[0].writeCompleted(operation, result: .failure(BoxTransportError(.alreadyExists, "taken")), now: pair.now)
        #expect(pair.ends[0].failure?.code == .transport)
    }

    @Test func deletedBoxFailsTheStream() throws {
        var pair = try MachinePair()
        let read = pair.ends[1].takeActions().compactMap { action -> OperationID? in
            if case .read(let operation, .inbound, 0, _) = action { return operation }
            return nil
        }.first
        pair.ends[1].readCompleted(try #require(read), result: .failure(BoxTransportError(.deleted, "tombstone")), now: pair.now)
        #expect(pair.ends[1].failure?.code == .transport)
        #expect(!BoxTransportError(.deleted, "").isTransient)
    }

    @Test func writesAfterCloseAndOnReadersFail() throws {
        var pair = try MachinePair()
        try pair.ends[0].appClose(now: pair.now)
        do {
            try pair.ends[0].appWrite([1], now: pair.now)
            Issue.record("wrote after close")
        } catch {
            #expect(error.code == .closed)
        }
        let reader = StreamAddress(.multicastReader(frameKeyBase: vectorSecret, verifyKey: vectorSecret, readLocator: [1]))
        var machine = try StreamMachine(address: reader, role: .dialer, boxSize: 512, now: .zero, randomSeed: 1)
        do {
            try machine.appWrite([1], now: .zero)
            Issue.record("a multicast reader wrote")
        } catch {
            #expect(error.code == .readOnly)
        }
    }

    @Test func haltStopsEverything() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite([1], now: pair.now)
        pair.ends[0].halt()
        #expect(pair.ends[0].isHalted && pair.ends[0].nextDeadline == nil)
        do {
            try pair.ends[0].appWrite([1], now: pair.now)
            Issue.record("wrote after halt")
        } catch {
            #expect(error.code == .halted)
        }
    }

    @Test func invalidConfigurationsAreRejected() {
        var configuration = StreamConfiguration()
        configuration.readAhead = 1
        do {
            _ = try StreamMachine(address: .generate(), role: .listener, boxSize: 512, configuration: configuration, now: .zero, randomSeed: 1)
            Issue.record("accepted readAhead 1")
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
        do {
            _ = try StreamMachine(address: .generate(), role: .listener, boxSize: 100, now: .zero, randomSeed: 1)
            Issue.record("accepted a 100-byte box")
        } catch {
            #expect(error.code == .invalidConfiguration)
        }
    }

    @Test func everyErrorCodeHasAStableName() {
        let codes: [StreamError.Code] = [.closed, .halted, .invalidAddress, .geometryChanged, .frameDecrypt, .protocolViolation,
                                         .invalidCheckpoint, .transport, .readOnly, .invalidConfiguration, .invalidOffset]
        #expect(codes.map(\.name) == ["closed", "halted", "invalidAddress", "geometryChanged", "frameDecrypt", "protocolViolation",
                                      "invalidCheckpoint", "transport", "readOnly", "invalidConfiguration", "invalidOffset"])
        #expect(Set(codes).count == codes.count)
    }
}

@Suite struct BoundsTests {
    /// A peer that keeps sending data but never acknowledges our ack-only frames is cut off
    /// before their retained ciphertexts grow without bound.
    @Test func aPeerThatNeverAcknowledgesIsAViolation() throws {
        var configuration = StreamConfiguration()
        configuration.ackDelay = .zero
        var machine = try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: .listener, boxSize: 512,
            configuration: configuration, now: .zero, randomSeed: 1)
        let peer = FrameSealer(outbound: try StreamAddress(.endToEnd(secret: vectorSecret)).keys(as: .dialer).outbound!, boxSize: 512)
        var now = StreamTime.zero
        var index: UInt64 = 0
        while machine.failure == nil, index < UInt64(StreamMachine.maxRetainedAckOnlyFrames) + 10 {
            for action in machine.takeActions() {
                switch action {
                case .read(let operation, .inbound, let readIndex, _) where readIndex == index:
                    // Data that asks for acknowledgements but never acknowledges anything
                    // (cumulative ack stays 0).
                    let box = peer.seal(Frame(index: index, flags: .ackNow, dataOffset: index, data: [1]))
                    machine.readCompleted(operation, result: .success(box), now: now)
                    index += 1
                case .write(let operation, _, _):
                    machine.writeCompleted(operation, result: .success(()), now: now)
                default:
                    break
                }
            }
            _ = machine.appRead(maxLength: 1 << 20, now: now)
            now = now + .milliseconds(10)
            machine.handleTimers(now: now)
        }
        #expect(machine.failure?.code == .protocolViolation)
        #expect(machine.failure?.message.contains("unacknowledged") == true, "\(String(describing: machine.failure)) after \(index) frames")
        #expect(machine.checkpoint.unackedCount <= StreamMachine.maxRetainedAckOnlyFrames)
    }
}
