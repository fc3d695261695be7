import CBOR
import FuzzSupport
import ThinWire

/// Treats arbitrary bytes as what a kpclientd connection receives: feeds them to a
/// `ThinFrameDecoder` in pieces whose sizes come from the input itself, pops frames until it
/// needs more bytes or fails, and decodes each frame as a `ThinMessage` (and its geometry
/// fields, as the thin client does on `connection_status_event`).
///
/// Checks: nothing traps; how the bytes are split never changes which frames come out or how
/// the decoder fails; the decoder never buffers more than it was given, and a failed decoder
/// drops its buffer; every decoded message re-encodes and decodes to itself. Allocations
/// beyond what the input justifies are caught by `-malloc_limit_mb` (scripts/fuzz).
@_cdecl("fuzz_thinwire_main")
func fuzzThinWireMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if writeSeedsIfRequested(argc, argv, seeds) { return 0 }
    return runLibFuzzer(argc, argv) { data, size in
        let input = Array(fuzzInput(data, size))
        let whole = decode(input, pieces: [input.count], maximumFrameLength: ThinFrame.maximumLength)
        let split = decode(input, pieces: pieceSizes(input), maximumFrameLength: ThinFrame.maximumLength)
        precondition(whole == split, "splitting the input changed the result: \(whole) vs \(split)")
        // A small cap: frames over 64 bytes are refused as soon as their prefix is seen.
        _ = decode(input, pieces: pieceSizes(input), maximumFrameLength: 64)
        for frame in whole.frames { checkMessage(frame) }
        return 0
    }
}

/// What a decoder produced: the frames, each re-encoded (NaN floats never compare equal, their
/// encodings do), and the error it stopped with.
private struct Outcome: Equatable, CustomStringConvertible {
    var frames: [[UInt8]] = []
    var error: String?
    var description: String { "\(frames.count) frames, error \(error ?? "none")" }
}

private func decode(_ input: [UInt8], pieces: [Int], maximumFrameLength: Int) -> Outcome {
    var decoder = ThinFrameDecoder(maximumFrameLength: maximumFrameLength)
    var outcome = Outcome()
    var offset = 0
    var appended = 0
    feeding: for size in pieces where offset < input.count {
        let end = min(input.count, offset + size)
        decoder.append(input[offset..<end])
        appended += end - offset
        offset = end
        precondition(decoder.bufferedByteCount <= appended, "the decoder holds more bytes than it was given")
        while true {
            do {
                guard let value = try decoder.nextValue() else { break }
                outcome.frames.append(value.encoded())
            } catch {
                precondition(error.code == .frameTooLarge || error.code == .invalidCBOR, "unexpected error \(error)")
                precondition(decoder.bufferedByteCount == 0, "a failed decoder keeps its buffer")
                // It stays failed, with the same error, whatever comes next.
                decoder.append([0, 0, 0, 0])
                do {
                    _ = try decoder.nextFrameBody()
                    preconditionFailure("a failed decoder decoded again")
                } catch let again {
                    precondition(again == error, "a failed decoder changed its error")
                }
                outcome.error = "\(error.code)"
                break feeding
            }
        }
    }
    return outcome
}

/// Piece sizes derived from the input: an FNV-1a hash of it seeds a generator, and one of its
/// bits picks the scale, from byte by byte to pieces of a few hundred bytes.
private func pieceSizes(_ input: [UInt8]) -> [Int] {
    var state: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in input { state = (state ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let scale = [1, 3, 8, 40, 300][Int(state % 5)]
    var sizes: [Int] = []
    var total = 0
    while total < input.count {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        let size = 1 + Int(state % UInt64(scale))
        sizes.append(size)
        total += size
    }
    return sizes
}

/// Decodes one frame as a message the way the client and the simulator do, and checks that the
/// message survives its own encoding.
private func checkMessage(_ encoded: [UInt8]) {
    guard let value = try? ThinFrame.decodeBody(encoded) else { preconditionFailure("a value we encoded does not decode") }
    let message: ThinMessage
    do {
        message = try ThinMessage(decoding: value)
    } catch {
        let expected: [ThinWireError.Code] = [.notAMap, .noMessageKey, .ambiguousMessage]
        precondition(expected.contains(error.code), "unexpected error \(error)")
        return
    }
    let frame = message.frame
    var decoder = ThinFrameDecoder()
    decoder.append(frame)
    do {
        guard let again = try decoder.nextValue() else { preconditionFailure("our own frame is incomplete") }
        precondition(decoder.bufferedByteCount == 0, "our own frame has trailing bytes")
        let reparsed = try ThinMessage(decoding: again)
        precondition(reparsed.key == message.key && reparsed.body.encoded() == message.body.encoded(), "round trip changed the message")
    } catch {
        preconditionFailure("our own message does not decode: \(error)")
    }

    // The typed accessors, as the client applies them to replies and events.
    let fields = message.fields
    _ = try? fields.queryID()
    _ = try? fields.errorCode()
    _ = try? fields.optionalUInt("epoch")
    _ = try? fields.int("epoch")
    _ = try? fields.optionalBool("is_connected")
    _ = try? fields.optionalText("err")
    _ = try? fields.optionalArray("payloads")
    _ = try? fields.optionalBytes("payload", length: 16)
    if let sphinx = fields.raw(ThinKey.Field.sphinxGeometry), let geometry = try? SphinxGeometry(cbor: sphinx) {
        precondition((try? SphinxGeometry(cbor: geometry.cborValue)) == geometry, "Sphinx geometry round trip failed")
        _ = PigeonholeGeometry(derivedFrom: geometry)
    }
    if let pigeonhole = fields.raw(ThinKey.Field.pigeonholeGeometry), let geometry = try? PigeonholeGeometry(cbor: pigeonhole) {
        precondition((try? PigeonholeGeometry(cbor: geometry.cborValue)) == geometry, "Pigeonhole geometry round trip failed")
    }
}

/// Real frames as kpclientd and its clients send them, alone and back to back.
private func seeds() -> [[UInt8]] {
    let queryID = (0..<16).map { UInt8($0) }
    let (sphinx, pigeonhole) = PigeonholeGeometry.simulatedPair()
    let messages: [ThinMessage] = [
        ThinMessage(ThinKey.Request.thinClose, body: .map([])),
        ThinMessage(ThinKey.Event.connectionStatus, [
            (ThinKey.Field.isConnected, .bool(true)), (ThinKey.Field.err, .null),
            (ThinKey.Field.instanceToken, .bytes(Array(repeating: 9, count: 16))),
            (ThinKey.Field.sphinxGeometry, sphinx.cborValue), (ThinKey.Field.pigeonholeGeometry, pigeonhole.cborValue),
        ]),
        ThinMessage(ThinKey.Request.newKeypair, [(ThinKey.Field.queryID, .bytes(queryID)), ("seed", .bytes(Array(repeating: 3, count: 32)))]),
        ThinMessage(ThinKey.Reply.newKeypair, [
            (ThinKey.Field.queryID, .bytes(queryID)), ("write_cap", .bytes(Array(repeating: 1, count: ThinSizes.writeCap))),
            ("read_cap", .bytes(Array(repeating: 2, count: ThinSizes.readCap))), (ThinKey.Field.errorCode, .unsigned(0)),
        ]),
        ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .bytes(Array("pki document".utf8))), ("epoch", .unsigned(1234))]),
        ThinMessage(ThinKey.Event.shutdown, body: .map([])),
    ]
    var seeds = messages.map { $0.frame }
    // A Go-style map: every key present, all but one null.
    let goStyle = CBORValue.textMap([("thin_close", .null), ("shutdown_event", .textMap([])), ("send_message", .null)])
    seeds.append(ThinFrame.encode(goStyle))
    seeds.append(seeds[0] + seeds[2] + seeds[3])
    seeds.append(seeds[1] + seeds[4] + [0, 0, 0])  // Ends inside a length prefix.
    return seeds
}
