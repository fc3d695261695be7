import Testing
import ThinWire

@testable import KpclientdSim

struct SimInternalsTests {
    @Test func keypairLayoutAndDeterminism() {
        let seed = [UInt8](repeating: 9, count: 32)
        let a = Capabilities.keypair(seed: seed)
        let b = Capabilities.keypair(seed: seed)
        #expect(a.writeCap == b.writeCap && a.readCap == b.readCap)
        #expect(a.writeCap.count == 168 && a.readCap.count == 136 && a.firstIndex.count == 104)
        #expect(Array(a.writeCap[32..<64]) == Array(a.readCap[0..<32]))
        #expect(Array(a.writeCap[64...]) == a.firstIndex && Array(a.readCap[32...]) == a.firstIndex)
        let counter = CapabilityLayout.counter(ofIndex: a.firstIndex)!
        #expect(counter > 1 << 40)
        let next = Capabilities.successor(of: a.firstIndex)
        #expect(CapabilityLayout.counter(ofIndex: next) == counter + 1)
        #expect(Capabilities.successor(of: a.firstIndex) == next)
        #expect(Array(next[8...]) != Array(a.firstIndex[8...]))
        let publicKey = Array(a.readCap[0..<32])
        #expect(Capabilities.boxID(publicKey: publicKey, index: a.firstIndex) != Capabilities.boxID(publicKey: publicKey, index: next))
    }

    @Test func envelopesOpenVerifyAndRejectTampering() {
        let geometry = PigeonholeGeometry.simulatedPair().pigeonhole
        let sealer = EnvelopeSealer(key: [UInt8](repeating: 1, count: 32), geometry: geometry)
        let keypair = Capabilities.keypair(seed: [UInt8](repeating: 2, count: 32))
        let write = sealer.sealWrite(writeCap: keypair.writeCap, index: keypair.firstIndex, plaintext: [1, 2, 3], nonce: [UInt8](repeating: 3, count: 24))
        let read = sealer.sealRead(publicKey: Array(keypair.readCap[0..<32]), index: keypair.firstIndex, nonce: [UInt8](repeating: 4, count: 24))
        #expect(write.count == geometry.courierQueryWriteLength && read.count == write.count)
        let opened = sealer.open(write)!
        #expect(opened.kind == .write && opened.plaintext == [1, 2, 3] && opened.hasValidSignature && !opened.isTombstone)
        #expect(sealer.open(read)?.kind == .read)
        var tampered = write
        tampered[100] ^= 1
        #expect(sealer.open(tampered) == nil)
        let other = EnvelopeSealer(key: [UInt8](repeating: 5, count: 32), geometry: geometry)
        #expect(other.open(write) == nil)

        var store = BoxStore(capacity: 1, maxPlaintextLength: geometry.maxPlaintextPayloadLength)
        #expect(store.apply(opened) == .success)
        var forged = opened
        forged.plaintext = [9]
        #expect(store.apply(forged) == .invalidSignature)
        let second = EnvelopeSealer.signedWrite(writeCap: keypair.writeCap, index: Capabilities.successor(of: keypair.firstIndex), plaintext: [7])
        #expect(store.apply(second) == .storageFull)
    }

    @Test("signing with seed ‖ public key verifies; a write cap with another public key never does")
    func signaturesWithoutKeyDerivation() {
        let keypair = Capabilities.keypair(seed: [UInt8](repeating: 6, count: 32))
        let seed = Array(keypair.writeCap[0..<32])
        let publicKey = Array(keypair.writeCap[32..<64])
        let message: [UInt8] = Array("box".utf8)
        let signature = SimCrypto.ed25519Sign(message, seed: seed, publicKey: publicKey)
        #expect(SimCrypto.ed25519Verify(signature, message: message, publicKey: publicKey))
        #expect(publicKey == SimCrypto.ed25519PublicKey(seed: seed))

        let opened = EnvelopeSealer.signedWrite(writeCap: keypair.writeCap, index: keypair.firstIndex, plaintext: [1])
        #expect(opened.hasValidSignature)
        var store = BoxStore(capacity: 2, maxPlaintextLength: 100)
        #expect(store.apply(opened) == .success)
        // A write cap whose public key is not the seed's: the box is refused, as before.
        let other = Capabilities.keypair(seed: [UInt8](repeating: 7, count: 32))
        let mismatched = Array(keypair.writeCap[0..<32]) + Array(other.writeCap[32...])
        let forged = EnvelopeSealer.signedWrite(writeCap: mismatched, index: other.firstIndex, plaintext: [2])
        #expect(!forged.hasValidSignature)
        #expect(store.apply(forged) == .invalidSignature)
    }

    @Test("a session counts its ARQs per envelope hash as they come and go")
    func arqCountsPerHash() {
        let session = SimCore.Session(appID: [1], connectionID: ConnectionID(raw: 1))
        func op(_ serial: UInt64, _ hash: UInt8) -> SimCore.Operation {
            let op = SimCore.Operation(serial: serial, queryID: [UInt8(serial)])
            op.hash = [UInt8](repeating: hash, count: 32)
            return op
        }
        let hashA = [UInt8](repeating: 0xa, count: 32)
        #expect(!session.hasARQ(hash: hashA))
        session.addARQ(op(1, 0xa))
        session.addARQ(op(2, 0xa))  // a replay: a second ARQ of the same envelope
        session.addARQ(op(3, 0xb))
        #expect(session.hasARQ(hash: hashA) && session.operationCount == 3)
        #expect(session.removeARQ(1)?.serial == 1)
        #expect(session.hasARQ(hash: hashA))
        #expect(session.removeARQ(1) == nil)
        #expect(session.removeARQ(2)?.serial == 2)
        #expect(!session.hasARQ(hash: hashA) && session.hasARQ(hash: [UInt8](repeating: 0xb, count: 32)))
        session.removeAllARQs()
        #expect(!session.hasARQ(hash: [UInt8](repeating: 0xb, count: 32)) && session.operationCount == 0)
    }

    @Test func copyStreamCutsElementsWithFlags() {
        let m = 100
        var residual = CopyStream.Residual(startPending: true, bytes: [UInt8](repeating: 1, count: 250))
        let buffered = CopyStream.cut(&residual, maxPlaintextLength: m, flush: false, final: false)
        #expect(buffered.count == 2 && buffered.allSatisfy { $0.count == m })
        #expect(buffered[0][0] == CopyStream.startFlag && buffered[1][0] == 0)
        #expect(residual.bytes.count == 250 - 2 * 95 && !residual.startPending)
        let rest = CopyStream.cut(&residual, maxPlaintextLength: m, flush: true, final: true)
        #expect(rest.count == 1 && rest[0][0] == CopyStream.finalFlag && rest[0].count == 5 + 60)
        #expect(CopyStream.parseElement(rest[0])?.data.count == 60)

        var exact = CopyStream.Residual(startPending: false, bytes: [UInt8](repeating: 1, count: 95))
        let one = CopyStream.cut(&exact, maxPlaintextLength: m, flush: true, final: true)
        #expect(one.count == 1 && one[0][0] == CopyStream.finalFlag)

        var records: [UInt8] = []
        CopyStream.appendRecord([1, 2], to: &records)
        CopyStream.appendRecord([], to: &records)
        #expect(CopyStream.parseRecords(records, maxRecords: 10) == [[1, 2], []])
        #expect(CopyStream.parseRecords(records + [0, 0, 0, 9], maxRecords: 10) == nil)
        #expect(CopyStream.Residual(buffer: [7], isStart: false, limit: 10) == nil)
        #expect(CopyStream.Residual(buffer: [1, 5], isStart: false, limit: 10)?.startPending == true)
    }

    @Test func seededRandomIsReproducibleAndExponentialHasTheRightMean() {
        var a = SimRandom(seed: 7)
        var b = SimRandom(seed: 7)
        #expect(a.bytes(100) == b.bytes(100))
        var samples = 0.0
        for _ in 0..<20_000 { samples += a.exponential(mean: 2) }
        #expect(abs(samples / 20_000 - 2) < 0.1)
    }

    @Test func stateFileRoundTripsAndRejectsBadEntries() throws {
        let contents = StateFile.Contents(
            envelopeKey: [UInt8](repeating: 1, count: 32),
            boxes: [[UInt8](repeating: 2, count: 32): StoredBox(plaintext: [1], isTombstone: false),
                    [UInt8](repeating: 3, count: 32): StoredBox(plaintext: [], isTombstone: true)]
        )
        let bytes = StateFile.encode(contents, maxPlaintextLength: 10)
        let decoded = try StateFile.decode(bytes, capacity: 10, maxPlaintextLength: 10)
        #expect(decoded.envelopeKey == contents.envelopeKey && decoded.boxes == contents.boxes)
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(bytes, capacity: 1, maxPlaintextLength: 10) }
        let big = StateFile.Contents(envelopeKey: contents.envelopeKey, boxes: [[UInt8](repeating: 4, count: 32): StoredBox(plaintext: [UInt8](repeating: 0, count: 11), isTombstone: false)])
        #expect(throws: SimStateError.self) { _ = try StateFile.decode(StateFile.encode(big, maxPlaintextLength: 11), capacity: 10, maxPlaintextLength: 10) }
    }
}

