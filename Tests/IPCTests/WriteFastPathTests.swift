import CBOR
import Testing

@testable import IPC

/// The `write` / `written` fast path writes exactly the general encoder's bytes, and what it
/// decodes the bounded general decoder decodes to the same message; everything else it leaves
/// to the general decoder.
@Suite struct WriteFastPathTests {
    static let numbers: [UInt64] = [0, 1, 23, 24, 255, 256, 65_535, 65_536, (1 << 32) - 1, 1 << 32, UInt64.max]
    static let sizes = [0, 1, 23, 24, 255, 256, 65_535, 65_536, IPCLimits.maxChunk]

    @Test func encodingsAreTheGeneralEncodersBytes() throws {
        let names = [try StreamName("a"), try StreamName("w17"), try StreamName(String(repeating: "n", count: IPCLimits.maxNameLength))]
        for id in Self.numbers {
            for offset in Self.numbers {
                let reply = IPCServerMessage.reply(id: id, .success(.written(accepted: offset / 3, offset: offset)))
                #expect(reply.framed() == IPCFraming.frame(reply.cborValue.encoded()))
                #expect(try IPCServerMessage(decoding: reply.encoded()) == reply)
                for name in names {
                    let request = IPCRequestMessage(id: id, request: .write(name: name, offset: offset, data: [UInt8](repeating: 7, count: Int(offset % 300))))
                    #expect(request.framed() == IPCFraming.frame(request.cborValue.encoded()))
                    #expect(WriteFastPath.decodeWrite(request.encoded()) == request)
                }
            }
        }
        for size in Self.sizes {
            let request = IPCRequestMessage(id: 9, request: .write(name: try StreamName("s"), offset: 5, data: [UInt8](repeating: 1, count: size)))
            #expect(request.framed() == IPCFraming.frame(request.cborValue.encoded()))
            #expect(WriteFastPath.decodeWrite(request.encoded()) == request)
        }
    }

    /// Every one-byte change, truncation and extension of a `write` and a `written`: the fast
    /// path either declines or agrees with the general decoder, and `init(decoding:)` gives the
    /// general decoder's result or error.
    @Test func mutationsDecodeAsTheGeneralDecoderDecodesThem() throws {
        let request = IPCRequestMessage(id: 300, request: .write(name: try StreamName("w1"), offset: 70_000, data: Array(0..<40))).encoded()
        let reply = IPCServerMessage.reply(id: 300, .success(.written(accepted: 100, offset: 70_000))).encoded()
        var fastRequests = 0
        var fastReplies = 0
        for variant in Self.mutations(of: request) {
            let general = Result { () throws(IPCError) in try IPCRequestMessage(decodingTree: variant) }
            #expect(Result { () throws(IPCError) in try IPCRequestMessage(decoding: variant) } == general)
            if let fast = WriteFastPath.decodeWrite(variant) {
                fastRequests += 1
                #expect(general == .success(fast))
            }
        }
        for variant in Self.mutations(of: reply) {
            let general = Result { () throws(IPCError) in try IPCServerMessage(decodingTree: variant) }
            #expect(Result { () throws(IPCError) in try IPCServerMessage(decoding: variant) } == general)
            if let fast = WriteFastPath.decodeWritten(variant) {
                fastReplies += 1
                #expect(general == .success(fast))
            }
        }
        // The fast path takes the canonical forms and some value changes, not only the original.
        #expect(fastRequests > 1 && fastReplies > 1)
    }

    @Test func whatTheFastPathDeclinesIsLeftToTheGeneralDecoder() throws {
        let name = try StreamName("s")
        // Keys in another order, an unknown key, a longer-than-shortest integer, a name that is
        // not a stream name, data over the limit: all decline, and the general decoder decides.
        let reordered = CBORValue.textMap([("op", .text("write")), ("id", .unsigned(1)), ("name", .text("s")), ("offset", .unsigned(0)), ("data", .bytes([1]))]).encoded()
        #expect(WriteFastPath.decodeWrite(reordered) == nil)
        #expect(try IPCRequestMessage(decoding: reordered) == IPCRequestMessage(id: 1, request: .write(name: name, offset: 0, data: [1])))
        let extra = CBORValue.textMap([("id", .unsigned(1)), ("op", .text("write")), ("name", .text("s")), ("offset", .unsigned(0)), ("data", .bytes([1])), ("x", .null)]).encoded()
        #expect(WriteFastPath.decodeWrite(extra) == nil)
        #expect(try IPCRequestMessage(decoding: extra) == IPCRequestMessage(id: 1, request: .write(name: name, offset: 0, data: [1])))
        var long = IPCRequestMessage(id: 1, request: .write(name: name, offset: 0, data: [1])).encoded()
        long.replaceSubrange(3...3, with: [0x18, 0x01])  // id 1 as a one-byte argument
        #expect(WriteFastPath.decodeWrite(long) == nil)
        let badName = CBORValue.textMap([("id", .unsigned(1)), ("op", .text("write")), ("name", .text("-x")), ("offset", .unsigned(0)), ("data", .bytes([1]))]).encoded()
        #expect(WriteFastPath.decodeWrite(badName) == nil)
        #expect(throws: IPCError.self) { try IPCRequestMessage(decoding: badName) }
        let tooMuch = IPCRequestMessage(id: 1, request: .write(name: name, offset: 0, data: [UInt8](repeating: 0, count: IPCLimits.maxChunk + 1))).encoded()
        #expect(WriteFastPath.decodeWrite(tooMuch) == nil)
        do {
            _ = try IPCRequestMessage(decoding: tooMuch)
            Issue.record("data over the limit was accepted")
        } catch {
            #expect(error.code == .invalidArgument && error.requestID == 1)
        }
    }

    /// The payload with each byte replaced by a few values, cut at every length, and extended.
    static func mutations(of payload: [UInt8]) -> [[UInt8]] {
        var variants: [[UInt8]] = [payload, payload + [0], payload + [0xa0]]
        for index in payload.indices {
            for value: UInt8 in [0x00, 0x01, 0x17, 0x18, 0x1f, 0x40, 0x60, 0x61, 0x7f, 0xa4, 0xa5, 0xff, payload[index] ^ 0x01, payload[index] ^ 0x20] {
                var variant = payload
                variant[index] = value
                variants.append(variant)
            }
            variants.append(Array(payload[..<index]))
        }
        return variants
    }
}
