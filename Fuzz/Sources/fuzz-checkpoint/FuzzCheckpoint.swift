import CBOR
import FuzzSupport
import StreamCrypto
import StreamEngine

/// Decodes arbitrary bytes both as a checkpoint and as a journal record; whatever decodes must
/// re-encode and decode to the same value. A decoded checkpoint is restored into a machine and
/// driven for a few rounds against a loopback peer; a decoded record is replayed onto a few real
/// checkpoints and the result driven the same way. Nothing may trap, and the checkpoint a driven
/// machine ends with must decode again to itself (a stream must always be restorable).
@_cdecl("fuzz_checkpoint_main")
func fuzzCheckpointMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if writeSeedsIfRequested(argc, argv, seeds) { return 0 }
    return runLibFuzzer(argc, argv) { data, size in
        let input = Array(fuzzInput(data, size))
        checkCheckpoint(input)
        checkRecord(input)
        return 0
    }
}

private func checkCheckpoint(_ input: [UInt8]) {
    let checkpoint: StreamCheckpoint
    do {
        checkpoint = try StreamCheckpoint(encoded: input)
    } catch {
        precondition(error.code == .invalidCheckpoint, "unexpected error code \(error.code)")
        return
    }
    roundTrip(checkpoint)
    drive(checkpoint, journal: [])
}

private func checkRecord(_ input: [UInt8]) {
    let record: CheckpointRecord
    do {
        record = try CheckpointRecord(encoded: input)
    } catch {
        precondition(error.code == .invalidCheckpoint, "unexpected error code \(error.code)")
        return
    }
    let encoded = record.encoded()
    do {
        let again = try CheckpointRecord(encoded: encoded)
        precondition(again == record, "round trip changed the record")
        precondition(again.encoded() == encoded, "round trip changed the record's bytes")
    } catch {
        preconditionFailure("re-decoding our own record failed: \(error)")
    }
    for base in bases() {
        // As it is (its sequence number rarely fits), then renumbered to be the next record.
        var replayed = base
        try? replayed.replay([record])
        let next = CheckpointRecord(sequence: base.sequence + 1, delta: record.delta)
        drive(base, journal: [next])
    }
}

private func roundTrip(_ checkpoint: StreamCheckpoint) {
    let encoded = checkpoint.encoded()
    do {
        let again = try StreamCheckpoint(encoded: encoded)
        precondition(again == checkpoint, "round trip changed the checkpoint")
        precondition(again.encoded() == encoded, "round trip changed the checkpoint's bytes")
    } catch {
        preconditionFailure("re-decoding our own checkpoint failed: \(error)")
    }
}

// MARK: - Driving a restored machine

/// The secret behind every seed, so that the loopback peer can seal frames the machine opens.
private let secret = (0..<32).map { UInt8($0) }

/// Restores a machine and runs it for a few rounds: writes succeed, multicast verification
/// reads return what was written, inbound reads return frames sealed by a peer that knows
/// `secret` (or "not yet written"), and the app reads, writes and closes.
private func drive(_ checkpoint: StreamCheckpoint, journal: [CheckpointRecord]) {
    var machine: StreamMachine
    do {
        machine = try StreamMachine(restoring: checkpoint, journal: journal, boxSize: checkpoint.boxSize, now: .zero, randomSeed: 1)
    } catch {
        return
    }
    // Sealing megabyte boxes ten at a time only slows the fuzzer down.
    let peer = checkpoint.boxSize <= 8192 ? Peer(of: checkpoint) : nil
    var written: [UInt64: [UInt8]] = [:]
    var peerOffset = machine.checkpoint.deliveredBytes
    var now = StreamTime.zero
    for round in 0..<4 {
        for action in machine.takeActions() {
            switch action {
            case .write(let operation, let index, let bytes):
                precondition(bytes.count == checkpoint.boxSize, "the machine wrote a box of the wrong size")
                written[index] = written[index] ?? bytes
                machine.writeCompleted(operation, result: .success(()), now: now)
            case .read(let operation, .outbound, let index, _):
                machine.readCompleted(operation, result: .success(written[index]), now: now)
            case .read(let operation, .inbound, let index, _):
                var box: [UInt8]?
                let first = machine.checkpoint.nextReadIndex
                if let peer, index >= first, index - first < 3 {
                    // 10, 0 or 3 bytes: empty frames let the reader skip over missing indices.
                    let data = (0..<[0, 10, 3][Int(index % 3)]).map { UInt8(truncatingIfNeeded: index &+ UInt64($0)) }
                    let ack = peer.acknowledges ? machine.checkpoint.nextWriteIndex : 0
                    box = peer.seal(Frame(index: index, dataOffset: peerOffset, cumulativeAck: ack, data: data))
                    peerOffset &+= UInt64(data.count)
                }
                machine.readCompleted(operation, result: .success(box), now: now)
            case .cancel:
                break
            }
        }
        _ = machine.appRead(maxLength: 1 << 16, now: now)
        if round == 1 { _ = try? machine.appWrite(Array(repeating: 0x42, count: 600), now: now) }
        if round == 2 { try? machine.appClose(now: now) }
        now = now + .seconds(7)
        machine.handleTimers(now: now)
        _ = machine.status
        _ = machine.diagnostics
        _ = machine.nextDeadline
    }
    roundTrip(machine.checkpoint)
}

/// The other end of a stream made from `secret`: seals (and in multicast signs) its frames.
private struct Peer {
    let frameKeyBase: [UInt8]
    let signingKey: [UInt8]?
    let plaintextSize: Int
    let acknowledges: Bool

    init?(of checkpoint: StreamCheckpoint) {
        guard checkpoint.mode == .endToEnd || checkpoint.role == .dialer else { return nil }  // a multicast writer reads nothing
        let direction = StreamKeySchedule.direction(secret: secret, from: checkpoint.role == .listener ? .dialer : .listener)
        frameKeyBase = direction.frameKeyBase
        signingKey = checkpoint.mode == .multicast ? Ed25519.keyPair(seed: direction.signingSeed).secretKey : nil
        plaintextSize = checkpoint.boxSize - SecretBox.macLength - (signingKey == nil ? 0 : Ed25519.signatureLength)
        acknowledges = checkpoint.mode == .endToEnd
    }

    func seal(_ frame: Frame) -> [UInt8] {
        let (key, nonce) = StreamKeySchedule.frameKeyAndNonce(frameKeyBase: frameKeyBase, index: frame.index)
        var box = SecretBox.seal(frame.encode(plaintextSize: plaintextSize), key: key, nonce: nonce)
        if let signingKey {
            var message = Array("streamd/v1 box".utf8)
            withUnsafeBytes(of: frame.index.bigEndian) { message.append(contentsOf: $0) }
            box += Ed25519.sign(message + box, secretKey: signingKey)
        }
        return box
    }
}

// MARK: - Real checkpoints

/// Real checkpoints onto which decoded records are replayed, and which seed the corpus.
///
/// The global holds their encodings, not the values: LeakSanitizer cannot follow the pointers
/// Swift packs into multi-payload enums (such as a read locator's bytes), and reports them as
/// leaked when the process exits.
private let baseEncodings: [[UInt8]] = makeBases().map { $0.encoded() }

private func bases() -> [StreamCheckpoint] {
    baseEncodings.map { encoded in
        do {
            return try StreamCheckpoint(encoded: encoded)
        } catch {
            fatalError("a base checkpoint does not decode: \(error)")
        }
    }
}

private func makeBases() -> [StreamCheckpoint] {
    let endToEnd = StreamAddress(.endToEnd(secret: secret))
    let writer = StreamAddress(.multicastWriter(secret: secret))
    let direction = StreamKeySchedule.direction(secret: secret, from: .listener)
    let reader = StreamAddress(.multicastReader(
        frameKeyBase: direction.frameKeyBase, verifyKey: Ed25519.keyPair(seed: direction.signingSeed).publicKey,
        readLocator: Array("locator".utf8)))
    do {
        var listener = try StreamMachine(address: endToEnd, role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        let dialer = try StreamMachine(address: endToEnd, role: .dialer, boxSize: 512, now: .zero, randomSeed: 2)
        var multicast = try StreamMachine(address: writer, role: .listener, boxSize: 512, now: .zero, randomSeed: 3)
        let follower = try StreamMachine(address: reader, role: .dialer, boxSize: 512, now: .zero, randomSeed: 4)
        try listener.appWrite(Array("hello from the listener".utf8), now: .zero)
        try multicast.appWrite(Array(repeating: 0x33, count: 700), now: .zero)
        return [listener.checkpoint, dialer.checkpoint, multicast.checkpoint, follower.checkpoint]
    } catch {
        fatalError("cannot make the base checkpoints: \(error)")
    }
}

/// Checkpoints of real machines in several states, and one record of each delta kind.
private func seeds() -> [[UInt8]] {
    let bases = bases()
    var checkpoints = bases
    do {
        // A listener that wrote, then restored its checkpoint and drove it against the peer:
        // data received, frames unacknowledged, a FIN.
        var machine = try StreamMachine(address: .generate(), role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        try machine.appWrite(Array("some bytes for the other end".utf8), now: .zero)
        checkpoints.append(machine.checkpoint)
        try machine.appWrite((0..<900).map { UInt8(truncatingIfNeeded: $0) }, now: .zero)
        try machine.appClose(now: .zero)
        checkpoints.append(machine.checkpoint)
        var restored = try StreamMachine(restoring: bases[0], boxSize: 512, now: .zero, randomSeed: 1)
        let peer = Peer(of: bases[0])!
        // Frames 0 and 2, 3 arrive; 1 (4 bytes) is missing, so 2 and 3 wait as received frames.
        let frames: [UInt64: Frame] = [
            0: Frame(index: 0, dataOffset: 0, cumulativeAck: 1, data: Array("first".utf8)),
            2: Frame(index: 2, dataOffset: 9, cumulativeAck: 1, data: Array("next".utf8)),
            3: Frame(index: 3, dataOffset: 13, cumulativeAck: 1, data: Array("last".utf8)),
        ]
        for action in restored.takeActions() {
            switch action {
            case .write(let operation, _, _):
                restored.writeCompleted(operation, result: .success(()), now: .zero)
            case .read(let operation, .inbound, let index, _):
                if let frame = frames[index] { restored.readCompleted(operation, result: .success(peer.seal(frame)), now: .zero) }
            default:
                break
            }
        }
        restored.handleTimers(now: .zero + .seconds(1))
        checkpoints.append(restored.checkpoint)
    } catch {
        fatalError("cannot make the seed checkpoints: \(error)")
    }

    let ciphertext = Array(bases[0].encoded().suffix(512))  // Any 512 bytes stand for a sealed frame.
    let deltas: [CheckpointDelta] = [
        .appended(Array("more bytes".utf8)),
        .closeRequested,
        .frameCreated(index: 1, dataLength: 10, kind: .data, ciphertext: ciphertext),
        .frameCreated(index: 1, dataLength: 0, kind: .fin, ciphertext: ciphertext),
        .frameCreated(index: 1, dataLength: 0, kind: .ackOnly, ciphertext: ciphertext),
        .frameCreated(index: 1, dataLength: 0, kind: .ping, ciphertext: ciphertext),
        .frameReceived(Frame(index: 0, dataOffset: 0, cumulativeAck: 1, data: Array("hello".utf8))),
        .frameReceived(Frame(index: 2, flags: .fin, dataOffset: 5, cumulativeAck: 1,
                             sackRanges: [IndexRange(start: 3, count: 2)], data: Array("bye".utf8))),
        .verified(index: 0),
        .consumed(3),
    ]
    let records = deltas.enumerated().map { CheckpointRecord(sequence: UInt64($0.offset) + 2, delta: $0.element).encoded() }

    // Real checkpoints with their counters moved far up, written in 9-byte CBOR heads that one
    // byte flip turns into anything up to 2^64 - 1: random mutation rarely widens a 1-byte
    // integer into one, so without these the fuzzer never tries huge indices and offsets.
    let high: UInt64 = 1 << 40
    let moved = [
        edited(checkpoints[6], ["sequence": .unsigned(high), "next_write_index": .unsigned(high + 2),
                                "peer_cumulative_ack": .unsigned(high + 1), "framed_bytes": .unsigned(high),
                                "next_read_index": .unsigned(high), "delivered_bytes": .unsigned(high + 5),
                                "pending": .array([.array([.unsigned(high + 2), .unsigned(high + 9), .bool(false), .bytes([1, 2])])]),
                                "unacked": .array([])]),
        edited(bases[1], ["next_read_index": .unsigned(high), "delivered_bytes": .unsigned(high),
                          "pending": .array([.array([.unsigned(high + 3), .unsigned(high), .bool(true), .bytes([])])])]),
        edited(bases[0], ["write_buffer": .bytes(Array("buffered".utf8)), "framed_bytes": .unsigned(high),
                          "next_write_index": .unsigned(high + 1), "unacked": .array([]), "sequence": .unsigned(high)]),
    ]
    let movedRecords = [
        CheckpointRecord(sequence: high, delta: .frameReceived(Frame(index: high, dataOffset: high, data: [7]))).encoded(),
        CheckpointRecord(sequence: 1, delta: .frameReceived(Frame(index: 1, dataOffset: 0, cumulativeAck: high))).encoded(),
        CheckpointRecord(sequence: 1, delta: .frameCreated(index: high, dataLength: 0, kind: .ping, ciphertext: ciphertext)).encoded(),
    ]
    return checkpoints.map { $0.encoded() } + records + moved + movedRecords
}

/// `checkpoint`'s encoding with the values of some top-level fields replaced.
private func edited(_ checkpoint: StreamCheckpoint, _ changes: [String: CBORValue]) -> [UInt8] {
    guard let entries = try? CBORDecoder.decode(checkpoint.encoded()).mapEntries else { fatalError("a checkpoint is not a map") }
    return CBORValue.map(entries.map { entry in
        guard let key = entry.key.text, let value = changes[key] else { return entry }
        return CBORMapEntry(entry.key, value)
    }).encoded()
}
