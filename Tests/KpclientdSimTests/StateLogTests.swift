import CBOR
import Foundation
import Testing
import ThinWire

@testable import KpclientdSim

/// The `--state` file as a log: saves append the changed boxes, compaction rewrites it, a torn
/// append at its end is dropped, damage elsewhere is refused, and version 1 files still load.
@Suite(.timeLimit(.minutes(2)))
struct StateLogTests {
    static let maxPlaintext = 64

    /// A configuration with its state in `directory`, small enough that compaction comes soon.
    static func configuration(_ directory: URL, maxBoxes: Int = 1000, ttl: Duration? = nil) -> KpclientdSimConfiguration {
        var configuration = TestSupport.configuration()
        configuration.statePath = directory.appendingPathComponent("state").path
        configuration.maxPlaintextPayloadLength = maxPlaintext
        configuration.maxBoxes = maxBoxes
        configuration.boxTTL = ttl
        return configuration
    }

    /// Box writes (signed, as a client's envelope would be) to the boxes of one stream.
    struct Writer {
        let writeCap: [UInt8]
        var index: [UInt8]

        init(seed: UInt8) {
            let pair = Capabilities.keypair(seed: [UInt8](repeating: seed, count: 32))
            writeCap = pair.writeCap
            index = pair.firstIndex
        }

        /// The envelope writing `plaintext` (empty: a tombstone) to the current box.
        func envelope(_ plaintext: [UInt8]) -> OpenedEnvelope {
            EnvelopeSealer.signedWrite(writeCap: writeCap, index: index, plaintext: plaintext)
        }

        mutating func advance() { index = Capabilities.successor(of: index) }
    }

    static func fileLength(_ path: String) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? -1
    }

    @Test func savesAppendAndTheStateSurvivesARestart() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Self.configuration(directory)
        let path = configuration.statePath!
        var writer = Writer(seed: 1)
        let core = try SimCore(configuration: configuration)
        var lengths: [Int] = []
        for n in 0..<5 {
            #expect(await core.storeApply(writer.envelope([UInt8](repeating: UInt8(n), count: 10 + n))) == .success)
            await core.saveNow()
            lengths.append(Self.fileLength(path))
            writer.advance()
        }
        // The first save writes the header and a record; each later one appends one record.
        for n in 1..<5 {
            #expect(lengths[n] - lengths[n - 1] == StateLog.overhead + 10 + n)
        }
        // A tombstone over the first box appends a record too.
        let first = Writer(seed: 1)
        #expect(await core.storeApply(first.envelope([])) == .success)
        await core.saveNow()
        #expect(Self.fileLength(path) == lengths[4] + StateLog.overhead)
        let before = await core.store.boxes
        await core.shutdown()
        #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))

        let again = try SimCore(configuration: configuration)
        #expect(await again.store.boxes == before)
        #expect(await again.store.boxes[first.envelope([]).boxID]?.isTombstone == true)
        #expect(await again.stateNeedsCompaction == false)
        await again.shutdown()
    }

    @Test func compactionKeepsOnlyTheLiveBoxes() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Three boxes at most, each living 1 ms: every write past the third removes the expired
        // ones, so the log grows with removals until a save compacts it.
        let configuration = Self.configuration(directory, maxBoxes: 3, ttl: .milliseconds(1))
        let path = configuration.statePath!
        let limit = StateFile.maximumFileSize(capacity: 3, maxPlaintextLength: Self.maxPlaintext)
        var writer = Writer(seed: 2)
        let core = try SimCore(configuration: configuration)
        var lengths: [Int] = []
        for n in 0..<300 {
            #expect(await core.storeApply(writer.envelope([UInt8](repeating: UInt8(n % 256), count: Self.maxPlaintext))) == .success)
            await core.saveNow()
            lengths.append(Self.fileLength(path))
            writer.advance()
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(lengths.max()! <= limit)
        let compactions = zip(lengths, lengths.dropFirst()).filter { $0.1 < $0.0 }.count
        #expect(compactions >= 3)
        let before = await core.store.boxes
        #expect(before.count >= 1 && before.count <= 3)
        await core.shutdown()

        let again = try SimCore(configuration: configuration)
        #expect(await again.store.boxes == before)
        await again.shutdown()
    }

    @Test func aTornAppendIsDroppedAndTheNextSaveRewritesTheFile() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Self.configuration(directory)
        let path = configuration.statePath!
        var writer = Writer(seed: 3)
        let core = try SimCore(configuration: configuration)
        var ids: [[UInt8]] = []
        for n in 0..<3 {
            #expect(await core.storeApply(writer.envelope([UInt8](repeating: UInt8(n + 1), count: 20))) == .success)
            ids.append(writer.envelope([]).boxID)
            await core.saveNow()
            writer.advance()
        }
        await core.shutdown()
        let whole = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let lastRecord = StateLog.overhead + 20

        // Cut anywhere inside the last record, or its checksum wrong: the first two boxes load.
        var damaged: [[UInt8]] = [1, 5, 36, 37, 40, lastRecord - 1].map { Array(whole.dropLast($0)) }
        var flipped = whole
        flipped[flipped.count - 1] ^= 0x01
        damaged.append(flipped)
        for bytes in damaged {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let loaded = try SimCore(configuration: configuration)
            #expect(await loaded.store.count == 2)
            #expect(await loaded.store.boxes[ids[1]]?.plaintext == [UInt8](repeating: 2, count: 20))
            #expect(await loaded.store.boxes[ids[2]] == nil)
            #expect(await loaded.stateLogLength == whole.count - lastRecord)
            #expect(await loaded.stateNeedsCompaction)
            await loaded.shutdown()
        }

        // The next save after a torn append rewrites the file; it loads cleanly afterwards.
        try Data(whole.dropLast(5)).write(to: URL(fileURLWithPath: path))
        let resumed = try SimCore(configuration: configuration)
        #expect(await resumed.storeApply(writer.envelope([9])) == .success)
        await resumed.saveNow()
        #expect(await resumed.stateNeedsCompaction == false)
        let expected = await resumed.store.boxes
        await resumed.shutdown()
        let reloaded = try SimCore(configuration: configuration)
        #expect(await reloaded.store.boxes == expected)
        #expect(await reloaded.store.count == 3)
        #expect(await reloaded.stateNeedsCompaction == false)
        await reloaded.shutdown()
    }

    @Test func damageBeforeTheEndIsRefused() throws {
        let key = [UInt8](repeating: 7, count: 32)
        var bytes = StateFile.header(envelopeKey: key, maxPlaintextLength: 10)
        let header = bytes.count
        for n in 0..<3 {
            StateLog.appendRecord(boxID: [UInt8](repeating: UInt8(n), count: 32), box: StoredBox(plaintext: [UInt8(n)], isTombstone: false), to: &bytes)
        }
        let decoded = try StateFile.decode(bytes, capacity: 10, maxPlaintextLength: 10)
        #expect(decoded.boxes.count == 3 && decoded.logLength == bytes.count && !decoded.needsCompaction)
        // A capacity of 2 is exceeded by the third record.
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(bytes, capacity: 2, maxPlaintextLength: 10) }
        // A wrong checksum in the first record (not the last) is damage, not a torn append.
        var corrupt = bytes
        corrupt[header + 37] ^= 0x40
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(corrupt, capacity: 10, maxPlaintextLength: 10) }
        // An unknown kind; a length over the geometry's (checked before anything is allocated).
        var kind = bytes
        kind[header] = 9
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(kind, capacity: 10, maxPlaintextLength: 10) }
        var length = bytes
        length[header + 33] = 0xff
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(length, capacity: 10, maxPlaintextLength: 10) }
        // A tombstone or removal record carrying bytes.
        var tombstone = bytes
        tombstone[header] = StateLog.Kind.tombstone.rawValue
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(tombstone, capacity: 10, maxPlaintextLength: 10) }
        // Version 3 is not known.
        var future = WireCBOR.encode(.textMap([("format", .text(StateFile.format)), ("version", .unsigned(3)), ("envelope_key", .bytes(key))]))
        future += bytes[header...]
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(future, capacity: 10, maxPlaintextLength: 10) }
    }

    @Test func aVersion1FileLoadsAndIsRewrittenAsALog() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let configuration = Self.configuration(directory)
        let path = configuration.statePath!
        var writer = Writer(seed: 4)
        let envelope = writer.envelope([1, 2, 3])
        let key = [UInt8](repeating: 5, count: 32)
        let version1 = WireCBOR.encode(.textMap([
            ("format", .text(StateFile.format)), ("version", .unsigned(1)), ("envelope_key", .bytes(key)),
            ("max_plaintext_payload_length", .unsigned(UInt64(Self.maxPlaintext))),
            ("boxes", .array([.array([.bytes(envelope.boxID), .bytes([1, 2, 3]), .bool(false)])])),
        ]))
        try Data(version1).write(to: URL(fileURLWithPath: path))
        let core = try SimCore(configuration: configuration)
        #expect(await core.sealer.key == key)
        #expect(await core.store.boxes[envelope.boxID]?.plaintext == [1, 2, 3])
        #expect(await core.stateNeedsCompaction)
        writer.advance()
        #expect(await core.storeApply(writer.envelope([4])) == .success)
        await core.saveNow()
        await core.shutdown()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let decoded = try StateFile.decode(bytes, capacity: 10, maxPlaintextLength: Self.maxPlaintext)
        #expect(decoded.envelopeKey == key && decoded.boxes.count == 2 && !decoded.needsCompaction)
        // Trailing bytes after a version 1 map are refused, as before.
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(version1 + [0], capacity: 10, maxPlaintextLength: Self.maxPlaintext) }
    }
}
