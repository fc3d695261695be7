@testable import StreamEngine
import StreamCrypto
import Testing

@Suite struct FrameTests {
    let sample = Frame(index: 9, flags: [.ping], dataOffset: 77, cumulativeAck: 4,
                       sackRanges: [IndexRange(start: 6, count: 1), IndexRange(start: 8, count: 3)], data: [1, 2, 3])

    @Test func roundTripAndCapacity() throws {
        #expect(try Frame.decode(sample.encode(plaintextSize: 200)) == sample)
        let capacity = Frame.dataCapacity(plaintextSize: 200, sackCount: 2)
        #expect(capacity == 200 - 29 - 24)
        let full = Frame(index: 1, dataOffset: 0, data: Array(repeating: 0xaa, count: Frame.dataCapacity(plaintextSize: 200, sackCount: 0)))
        #expect(full.encode(plaintextSize: 200).count == 200)
        #expect(try Frame.decode(full.encode(plaintextSize: 200)) == full)
        let asking = Frame(index: 3, flags: [.fin, .ackNow], dataOffset: 10, data: [9])
        #expect(asking.encode(plaintextSize: 200)[1] == 0x05)
        #expect(try Frame.decode(asking.encode(plaintextSize: 200)) == asking)
    }

    @Test func malformedFramesAreProtocolViolations() {
        let good = sample.encode(plaintextSize: 120)
        var cases: [(String, [UInt8])] = []
        var wrongVersion = good; wrongVersion[0] = 2; cases.append(("version", wrongVersion))
        var unknownFlag = good; unknownFlag[1] = 0x80; cases.append(("flags", unknownFlag))
        var nextUnknownFlag = good; nextUnknownFlag[1] = 0x10; cases.append(("flag 0x10", nextUnknownFlag))
        var tooManySacks = good; tooManySacks[26] = 9; cases.append(("sack count", tooManySacks))
        var badPadding = good; badPadding[119] = 1; cases.append(("padding", badPadding))
        var hugeLength = good; hugeLength[27 + 24] = 0xff; cases.append(("length", hugeLength))
        var sackBelowAck = good; sackBelowAck[27 + 7] = 2; cases.append(("sack below ack", sackBelowAck))
        cases.append(("truncated", Array(good.prefix(20))))
        cases.append(("empty", []))
        for (name, bytes) in cases {
            #expect(throws: StreamError.self, "\(name)") { try Frame.decode(bytes) }
            do { _ = try Frame.decode(bytes) } catch { #expect(error.code == .protocolViolation, "\(name)") }
        }
    }

    @Test func boxesAuthenticate() throws {
        let address = StreamAddress.generate()
        let writer = FrameSealer(outbound: try address.keys(as: .listener).outbound!, boxSize: 300)
        let reader = FrameSealer(inbound: try address.keys(as: .dialer).inbound!, boxSize: 300)
        let wrongDirection = FrameSealer(inbound: try address.keys(as: .listener).inbound!, boxSize: 300)
        var box = writer.seal(sample)
        #expect(try reader.open(box, index: 9) == sample)
        func code(_ body: () throws(StreamError) -> Frame) -> StreamError.Code? {
            do { _ = try body(); return nil } catch { return error.code }
        }
        #expect(code { () throws(StreamError) in try wrongDirection.open(box, index: 9) } == .frameDecrypt)
        #expect(code { () throws(StreamError) in try reader.open(box, index: 10) } == .frameDecrypt)
        #expect(code { () throws(StreamError) in try reader.open(Array(box.prefix(299)), index: 9) } == .frameDecrypt)
        box[100] ^= 1
        #expect(code { () throws(StreamError) in try reader.open(box, index: 9) } == .frameDecrypt)
    }

    @Test func boxHoldingAnotherIndexIsAViolation() throws {
        let address = StreamAddress.generate()
        let base = try address.keys(as: .listener).outbound!.frameKeyBase
        // A frame claiming index 3, sealed under index 4's key.
        let frame = Frame(index: 3, dataOffset: 0)
        let (key, nonce) = StreamKeySchedule.frameKeyAndNonce(frameKeyBase: base, index: 4)
        let box = SecretBox.seal(frame.encode(plaintextSize: 300 - 16), key: key, nonce: nonce)
        let reader = FrameSealer(inbound: try address.keys(as: .dialer).inbound!, boxSize: 300)
        do {
            _ = try reader.open(box, index: 4)
            Issue.record("accepted a misplaced frame")
        } catch {
            #expect(error.code == .protocolViolation)
        }
    }

    @Test func multicastReadersCannotForgeFrames() throws {
        let writerAddress = StreamAddress.generate(mode: .multicast)
        let outbound = try writerAddress.keys(as: .listener).outbound!
        let verifyKey = Ed25519.keyPair(seed: outbound.signingSeed!).publicKey
        let readerKeys = InboundKeys(frameKeyBase: outbound.frameKeyBase, channel: .readLocator([1]), verifyKey: verifyKey)
        let reader = FrameSealer(inbound: readerKeys, boxSize: 400)
        let genuine = FrameSealer(outbound: outbound, boxSize: 400).seal(sample)
        #expect(try reader.open(genuine, index: 9) == sample)
        // A reader knows the frame key base, so it can encrypt, but it cannot sign.
        var forger = outbound
        forger.signingSeed = SecureRandom.bytes(32)
        let forged = FrameSealer(outbound: forger, boxSize: 400).seal(Frame(index: 9, dataOffset: 77, data: [6, 6, 6]))
        do {
            _ = try reader.open(forged, index: 9)
            Issue.record("accepted a forged frame")
        } catch {
            #expect(error.code == .frameDecrypt)
            #expect(error.message.contains("not signed"))
        }
    }
}
