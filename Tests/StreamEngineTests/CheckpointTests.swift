import CBOR
@testable import StreamEngine
import StreamEngineTesting
import Testing

/// Two machines wired back to back through an instant, lossless store, driven by hand.
struct MachinePair {
    var ends: [StreamMachine]
    var boxes: [[UInt64: [UInt8]]] = [[:], [:]]
    var now = StreamTime.zero

    init(boxSize: Int = 512, configuration: StreamConfiguration = .init(), durability: StreamDurability = .automatic) throws {
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        ends = [
            try StreamMachine(address: address, role: .listener, boxSize: boxSize, configuration: configuration, durability: durability, now: .zero, randomSeed: 1),
            try StreamMachine(address: address, role: .dialer, boxSize: boxSize, configuration: configuration, durability: durability, now: .zero, randomSeed: 2),
        ]
    }

    /// Delivers every pending action of both ends until nothing moves, answering waiting reads
    /// of empty boxes with "not yet written". Returns the actions seen, in order.
    @discardableResult
    mutating func settle(rounds: Int = 100) -> [StreamAction] {
        var seen: [StreamAction] = []
        for _ in 0..<rounds {
            var moved = false
            for side in 0..<2 {
                for action in ends[side].takeActions() {
                    seen.append(action)
                    moved = true
                    switch action {
                    case .write(let operation, let index, let bytes):
                        if boxes[side][index] == nil { boxes[side][index] = bytes }
                        ends[side].writeCompleted(operation, result: .success(()), now: now)
                    case .read(let operation, let channel, let index, let mode):
                        let number = channel == .outbound ? side : 1 - side
                        if let bytes = boxes[number][index] {
                            ends[side].readCompleted(operation, result: .success(bytes), now: now)
                        } else if mode == .poll {
                            ends[side].readCompleted(operation, result: .success(nil), now: now)
                        } else {
                            pendingReads.append((side, operation, number, index))
                        }
                    case .cancel(let operation):
                        pendingReads.removeAll { $0.operation == operation }
                    }
                }
            }
            // Answer waiting reads whose boxes now exist.
            for (position, read) in pendingReads.enumerated().reversed() {
                if let bytes = boxes[read.channel][read.index] {
                    pendingReads.remove(at: position)
                    ends[read.side].readCompleted(read.operation, result: .success(bytes), now: now)
                    moved = true
                }
            }
            if !moved { break }
        }
        return seen
    }

    var pendingReads: [(side: Int, operation: OperationID, channel: Int, index: UInt64)] = []

    mutating func advance(by duration: Duration) {
        now = now + duration
        for side in 0..<2 { ends[side].handleTimers(now: now) }
        settle()
    }
}

@Suite struct CheckpointTests {
    @Test func checkpointRoundTripsThroughCBOR() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite(Array(repeating: 1, count: 3000), now: pair.now)
        pair.settle()
        try pair.ends[1].appWrite(Array(repeating: 2, count: 100), now: pair.now)
        try pair.ends[1].appClose(now: pair.now)
        for end in pair.ends {
            let checkpoint = end.checkpoint
            #expect(try StreamCheckpoint(encoded: checkpoint.encoded()) == checkpoint)
        }
    }

    @Test func everyJournalRecordRoundTrips() throws {
        let deltas: [CheckpointDelta] = [
            .appended([1, 2, 3]), .closeRequested,
            .frameCreated(index: 4, dataLength: 3, kind: .fin, ciphertext: Array(repeating: 5, count: 256)),
            .frameReceived(Frame(index: 2, flags: [.fin], dataOffset: 9, cumulativeAck: 1, sackRanges: [IndexRange(start: 3, count: 2)], data: [7])),
            .verified(index: 8), .consumed(12),
        ]
        for (number, delta) in deltas.enumerated() {
            let record = CheckpointRecord(sequence: UInt64(number + 1), delta: delta)
            #expect(try CheckpointRecord(encoded: record.encoded()) == record)
        }
        #expect(throws: StreamError.self) { try CheckpointRecord(encoded: [0x82, 0x01, 0x09]) }
    }

    @Test func journalReplayRebuildsTheLiveState() throws {
        var pair = try MachinePair(durability: .explicit)
        let initial = pair.ends[0].checkpoint
        var journal: [CheckpointRecord] = []
        for round in 0..<5 {
            try pair.ends[0].appWrite(Array(repeating: UInt8(round), count: 700), now: pair.now)
            journal += pair.ends[0].takeJournal()
            pair.ends[0].markDurable(through: pair.ends[0].lastSequence, now: pair.now)
            pair.ends[1].markDurable(through: pair.ends[1].lastSequence, now: pair.now)
            pair.settle()
            journal += pair.ends[0].takeJournal()
            pair.ends[0].markDurable(through: pair.ends[0].lastSequence, now: pair.now)
            pair.ends[1].markDurable(through: pair.ends[1].lastSequence, now: pair.now)
            _ = pair.ends[1].takeJournal()
        }
        var rebuilt = initial
        try rebuilt.replay(journal)
        #expect(rebuilt == pair.ends[0].checkpoint)
        // Replaying again is idempotent; a gap is refused.
        try rebuilt.replay(journal)
        var gapped = initial
        do {
            try gapped.replay(journal.dropFirst())
            Issue.record("replayed a journal with a gap")
        } catch {
            #expect(error.code == .invalidCheckpoint)
        }
    }

    @Test func restoredMachineBehavesIdentically() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite(Array(repeating: 3, count: 5000), now: pair.now)
        pair.settle(rounds: 2)
        let saved = pair.ends[0].checkpoint
        var original = try StreamMachine(restoring: saved, boxSize: 512, now: pair.now, randomSeed: 9)
        var restored = try StreamMachine(restoring: try StreamCheckpoint(encoded: saved.encoded()), boxSize: 512, now: pair.now, randomSeed: 9)
        #expect(original.takeActions() == restored.takeActions())
        try original.appWrite([1, 2, 3], now: pair.now + .seconds(1))
        try restored.appWrite([1, 2, 3], now: pair.now + .seconds(1))
        original.handleTimers(now: pair.now + .seconds(10))
        restored.handleTimers(now: pair.now + .seconds(10))
        #expect(original.takeActions() == restored.takeActions())
        #expect(original.checkpoint == restored.checkpoint)
    }

    @Test func restoreResendsUnacknowledgedFramesByteIdentically() throws {
        var pair = try MachinePair()
        try pair.ends[0].appWrite(Array(repeating: 4, count: 1200), now: pair.now)
        let firstWrites = pair.ends[0].takeWrites()
        #expect(firstWrites.count == 3)
        var restored = try StreamMachine(restoring: pair.ends[0].checkpoint, boxSize: 512, now: pair.now, randomSeed: 3)
        let resent = restored.takeWrites()
        #expect(resent.map(\.1) == firstWrites.map(\.1))
        #expect(resent.map(\.2) == firstWrites.map(\.2))
    }

    @Test func changedBoxSizeIsRefused() throws {
        let pair = try MachinePair()
        do {
            _ = try StreamMachine(restoring: pair.ends[0].checkpoint, boxSize: 1024, now: .zero, randomSeed: 1)
            Issue.record("restored with a different box size")
        } catch {
            #expect(error.code == .geometryChanged)
            #expect(error.message.contains("1024"))
        }
    }

    @Test func corruptCheckpointsAreRefused() throws {
        let good = try MachinePair().ends[0].checkpoint.encoded()
        var entries = try MachinePair().ends[0].checkpoint.cborValue.mapEntries ?? []
        entries[0].value = .unsigned(99)
        let wrongVersion = CBORValue.map(entries)
        let inputs: [[UInt8]] = [[], [0xff], Array(good.prefix(good.count / 2)), wrongVersion.encoded(), good + [0]]
        for input in inputs {
            do {
                _ = try StreamCheckpoint(encoded: input)
                Issue.record("accepted a corrupt checkpoint")
            } catch {
                #expect(error.code == .invalidCheckpoint)
            }
        }
    }
}
