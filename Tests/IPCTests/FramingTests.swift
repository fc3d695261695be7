import IPC
import Testing

@Suite struct FramingTests {
    static let frames: [[UInt8]] = [
        IPCRequestMessage(id: 1, request: .hello(minVersion: 1, maxVersion: 1, client: "x")).framed(),
        IPCFraming.frame([]),
        IPCRequestMessage(id: 2, request: .write(name: Fixtures.chat, offset: 0, data: Array(repeating: 7, count: 300))).framed(),
        IPCServerMessage.event(.kpclientd(connected: true)).framed(),
    ]

    @Test func prefixIsBigEndianLength() {
        let frame = IPCFraming.frame(Array(repeating: 1, count: 0x01_0203))
        #expect(Array(frame.prefix(4)) == [0x00, 0x01, 0x02, 0x03])
        #expect(frame.count == 4 + 0x01_0203)
    }

    @Test func framesSplitAtEveryByteBoundary() throws {
        let stream = Self.frames.flatMap { $0 }
        let payloads = Self.frames.map { Array($0.dropFirst(4)) }
        for split in 0...stream.count {
            var decoder = IPCFrameDecoder()
            var got: [[UInt8]] = []
            decoder.append(stream[..<split])
            while let frame = try decoder.nextFrame() { got.append(frame) }
            decoder.append(stream[split...])
            while let frame = try decoder.nextFrame() { got.append(frame) }
            #expect(got == payloads, "split at \(split)")
            #expect(decoder.bufferedByteCount == 0)
        }
    }

    @Test func byteByByte() throws {
        let stream = Self.frames.flatMap { $0 }
        var decoder = IPCFrameDecoder()
        var got: [[UInt8]] = []
        for (index, byte) in stream.enumerated() {
            decoder.append([byte])
            while let frame = try decoder.nextFrame() { got.append(frame) }
            #expect(decoder.bufferedByteCount <= index + 1)
        }
        #expect(got == Self.frames.map { Array($0.dropFirst(4)) })
    }

    @Test func oversizePrefixIsRejectedBeforeThePayloadArrives() {
        var decoder = IPCFrameDecoder()
        let length = UInt32(IPCLimits.maxFrameSize + 1)
        decoder.append([UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)])
        #expect(decoder.bufferedByteCount == 4)
        #expect(throws: IPCError.self) { try decoder.nextFrame() }
        do {
            _ = try decoder.nextFrame()
            Issue.record("a failed decoder decoded")
        } catch {
            #expect(error.code == .frameTooLarge)
        }
        // Failed for good: the buffer is dropped and stays empty.
        #expect(decoder.bufferedByteCount == 0)
        #expect(decoder.hasFailed)
        decoder.append(IPCFraming.frame([0xa0]))
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func hugePrefixFailsAtOnceAndExactLimitIsAccepted() throws {
        var decoder = IPCFrameDecoder()
        decoder.append([0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        #expect(decoder.bufferedByteCount == 7)
        #expect(throws: IPCError.self) { try decoder.nextFrame() }

        var exact = IPCFrameDecoder(maxFrameSize: 8)
        exact.append(IPCFraming.frame(Array(repeating: 1, count: 8)))
        #expect(try exact.nextFrame() == Array(repeating: 1, count: 8))
        exact.append(IPCFraming.frame(Array(repeating: 1, count: 9)).prefix(4))
        #expect(throws: IPCError.self) { try exact.nextFrame() }
    }

    @Test func truncatedFramesWait() throws {
        let frame = Self.frames[2]
        for cut in 0..<frame.count {
            var decoder = IPCFrameDecoder()
            decoder.append(frame.prefix(cut))
            #expect(try decoder.nextFrame() == nil)
            #expect(decoder.bufferedByteCount == cut, "a server times out half frames by this count")
        }
    }

    @Test func bufferHoldsOnlyWhatArrived() throws {
        // A prefix announcing the maximum, then a trickle: the buffer is the trickle, not 1 MiB.
        var decoder = IPCFrameDecoder()
        let length = UInt32(IPCLimits.maxFrameSize)
        decoder.append([UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)])
        for _ in 0..<10 {
            decoder.append([0])
            #expect(try decoder.nextFrame() == nil)
        }
        #expect(decoder.bufferedByteCount == 14)
    }
}
