import CBOR
@testable import StreamEngine
import Testing

/// Inputs from the `fuzz-checkpoint` harness (`Fuzz/`) that trapped on an arithmetic overflow
/// before checkpoints and journal records had their counters bounded by
/// ``StreamCheckpoint/maxCounter``.
@Suite struct FuzzRegressionTests {
    let endToEnd = StreamAddress(.endToEnd(secret: vectorSecret))

    /// The fuzzer's crash input: the record `[1, 3, 2^64 - 16, 14, 0, 0, [], h'0800008045']`,
    /// a received frame far ahead of the reader whose offset fits. Resolving it moved the
    /// reader to index 2^64 - 15, and the restored machine trapped computing its read-ahead
    /// window (`StreamMachine.scheduleReads`).
    @Test func journalRecordWithAHugeFrameIndexIsRefused() throws {
        let record = try CheckpointRecord(encoded: unhex("8801031bfffffffffffffff00e000080450800008045"))
        #expect(record.sequence == 1)
        let dialer = try StreamMachine(address: endToEnd, role: .dialer, boxSize: 512, now: .zero, randomSeed: 1).checkpoint
        let error = #expect(throws: StreamError.self) {
            _ = try StreamMachine(restoring: dialer, journal: [record], boxSize: 512, now: .zero, randomSeed: 1)
        }
        #expect(error?.code == .invalidCheckpoint)
        // The last index itself, which trapped in `resolve` (index + 1).
        var replayed = dialer
        let last = CheckpointRecord(sequence: 1, delta: .frameReceived(Frame(index: .max, dataOffset: 0)))
        #expect(throws: StreamError.self) { try replayed.replay([last]) }
        #expect(replayed == dialer)
    }

    /// Checkpoints whose counters overflowed as soon as the restored machine (or the next
    /// frame) added to them; each trapped where noted. All are refused when decoded now.
    @Test func checkpointsWithCountersNearOverflowAreRefused() throws {
        let listener = try writtenListener()
        let dialer = try StreamMachine(address: endToEnd, role: .dialer, boxSize: 512, now: .zero, randomSeed: 1).checkpoint
        let max = UInt64.max
        let cases: [(String, StreamCheckpoint, [String: CBORValue])] = [
            ("read-ahead window (scheduleReads)", dialer, ["next_read_index": .unsigned(max - 2)]),
            ("journal sequence (record)", listener, ["sequence": .unsigned(max)]),
            ("framed bytes (apply frameCreated)", listener, ["framed_bytes": .unsigned(max), "write_buffer": .bytes([1, 2, 3, 4, 5])]),
            ("next write index (apply frameCreated)", listener,
             ["next_write_index": .unsigned(max), "write_buffer": .bytes([1, 2, 3, 4, 5]), "unacked": .array([])]),
            ("received frame's end (resolve)", dialer,
             ["delivered_bytes": .unsigned(max - 1), "pending": .array([.array([.unsigned(5), .unsigned(max - 1), .bool(false), .bytes([1, 2, 3])])])]),
            ("received frame's index (resolve)", dialer,
             ["pending": .array([.array([.unsigned(max), .unsigned(0), .bool(false), .bytes([])])])]),
        ]
        for (name, checkpoint, changes) in cases {
            let error = #expect(throws: StreamError.self, "\(name)") { try StreamCheckpoint(encoded: edited(checkpoint, changes)) }
            #expect(error?.code == .invalidCheckpoint, "\(name)")
        }
    }

    /// Counters exactly at the bound decode; a machine restored from them fails cleanly, rather
    /// than crossing it, and its checkpoint still decodes.
    @Test func countersAtTheBoundFailTheStreamCleanly() throws {
        let bound = StreamCheckpoint.maxCounter
        let listener = try writtenListener()
        let cases: [(String, [String: CBORValue])] = [
            ("sequence", ["sequence": .unsigned(bound)]),
            ("next write index", ["next_write_index": .unsigned(bound), "unacked": .array([])]),
            ("framed bytes", ["framed_bytes": .unsigned(bound - 5), "write_buffer": .bytes([1, 2, 3, 4, 5])]),
        ]
        for (name, changes) in cases {
            let checkpoint = try StreamCheckpoint(encoded: edited(listener, changes))
            var machine = try StreamMachine(restoring: checkpoint, boxSize: 512, now: .zero, randomSeed: 1)
            _ = try? machine.appWrite([9], now: .zero)  // Throws, or fails the stream creating the frame.
            #expect(machine.failure?.code == .invalidCheckpoint, "\(name)")
            #expect(throws: StreamError.self, "\(name)") { try machine.appWrite([9], now: .zero) }
            #expect(try StreamCheckpoint(encoded: machine.checkpoint.encoded()) == machine.checkpoint, "\(name)")
        }
    }

    /// A listener that has sent one frame, so it has every kind of field.
    private func writtenListener() throws -> StreamCheckpoint {
        var machine = try StreamMachine(address: endToEnd, role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        try machine.appWrite(Array("hello".utf8), now: .zero)
        return machine.checkpoint
    }

    /// `checkpoint`'s encoding with some top-level fields replaced.
    private func edited(_ checkpoint: StreamCheckpoint, _ changes: [String: CBORValue]) -> [UInt8] {
        guard case .map(let entries) = checkpoint.cborValue else { return [] }
        return CBORValue.map(entries.map { entry in
            guard let key = entry.key.text, let value = changes[key] else { return entry }
            return CBORMapEntry(entry.key, value)
        }).encoded()
    }
}
