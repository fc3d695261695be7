import CBOR
import FuzzSupport
import IPC

/// Treats arbitrary bytes as what either end of an app connection receives: feeds them to an
/// `IPCFrameDecoder` in pieces whose sizes come from the input, decodes every frame as a request
/// (what the daemon does) and as a server message (what a client does), and decodes the whole
/// input as one payload too (most mutations break the length prefix).
///
/// Checks: nothing traps; splitting never changes the frames or the error; the decoder never
/// buffers more than it was given, and a failed one keeps its error and no buffer; decoders
/// throw only the documented codes, and a request error carries an id exactly when the
/// payload is a map with an unsigned `id`; whatever decodes re-encodes to bytes that decode to
/// the same value and encode to the same bytes; a `write` or `written` (which have a fast path)
/// holds exactly the payload map's values.
@_cdecl("fuzz_ipc_main")
func fuzzIPCMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if writeSeedsIfRequested(argc, argv, seeds) { return 0 }
    return runLibFuzzer(argc, argv) { data, size in
        let input = Array(fuzzInput(data, size))
        let whole = frames(input, pieces: [input.count], maxFrameSize: IPCLimits.maxFrameSize)
        let split = frames(input, pieces: pieceSizes(input), maxFrameSize: IPCLimits.maxFrameSize)
        precondition(whole == split, "splitting the input changed the result: \(whole) vs \(split)")
        _ = frames(input, pieces: pieceSizes(input), maxFrameSize: 32)
        for payload in whole.frames + [input] {
            checkRequest(payload)
            checkServerMessage(payload)
        }
        return 0
    }
}

private struct Outcome: Equatable, CustomStringConvertible {
    var frames: [[UInt8]] = []
    var error: IPCError?
    var description: String { "\(frames.count) frames, error \(error.map { "\($0)" } ?? "none")" }
}

private func frames(_ input: [UInt8], pieces: [Int], maxFrameSize: Int) -> Outcome {
    var decoder = IPCFrameDecoder(maxFrameSize: maxFrameSize)
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
                guard let frame = try decoder.nextFrame() else { break }
                precondition(frame.count <= maxFrameSize, "a frame over the limit came out")
                appended -= frame.count + IPCFraming.prefixLength
                outcome.frames.append(frame)
            } catch {
                precondition(error.code == .frameTooLarge, "unexpected framing error \(error)")
                precondition(decoder.bufferedByteCount == 0 && decoder.hasFailed, "a failed decoder keeps its buffer")
                decoder.append([0, 0, 0, 1, 0xa0])
                precondition(decoder.bufferedByteCount == 0, "a failed decoder buffers again")
                do {
                    _ = try decoder.nextFrame()
                    preconditionFailure("a failed decoder decoded again")
                } catch let again {
                    precondition(again == error, "a failed decoder changed its error")
                }
                outcome.error = error
                break feeding
            }
        }
    }
    return outcome
}

/// Piece sizes derived from the input (FNV-1a seeds an xorshift), from 1 to 300 bytes.
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

private let decodingCodes: [IPCError.Code] = [.malformed, .frameTooLarge, .invalidArgument, .unknownOperation, .invalidName]

/// The unsigned `id` of a payload that is a CBOR map, if it has one.
private func readableID(_ payload: [UInt8]) -> UInt64? {
    guard let value = try? CBORDecoder.decode(payload, limits: IPCLimits.requestCBORLimits) else { return nil }
    return value["id"]?.uint64
}

private func checkRequest(_ payload: [UInt8]) {
    let message: IPCRequestMessage
    do {
        message = try IPCRequestMessage(decoding: payload)
    } catch {
        precondition(decodingCodes.contains(error.code), "unexpected request error \(error)")
        precondition(error.requestID == readableID(payload), "request error id \(String(describing: error.requestID)) for \(error)")
        return
    }
    precondition(message.id == readableID(payload), "decoded id differs from the map's")
    let encoded = message.encoded()
    do {
        let again = try IPCRequestMessage(decoding: encoded)
        precondition(again == message, "request round trip changed the value")
        precondition(again.encoded() == encoded, "request encoding is not deterministic")
    } catch {
        preconditionFailure("a request we encoded does not decode: \(error)")
    }
    if case .read(_, _, let maxLength, _) = message.request {
        precondition((1...IPCLimits.maxChunk).contains(maxLength), "max_length out of range")
    }
    if case .write(_, _, let data) = message.request {
        precondition(data.count <= IPCLimits.maxChunk, "write data over the limit")
        checkFields(of: message.cborValue, in: payload, limits: IPCLimits.requestCBORLimits)
    }
}

/// A `write` or `written` (decoded in place when laid out as encoders write them, else through
/// the bounded decoder) holds exactly the values the payload's map has under its keys, and the
/// payload is one CBOR map within the limits.
private func checkFields(of value: CBORValue, in payload: [UInt8], limits: CBORDecoder.Limits) {
    guard let map = try? CBORDecoder.decode(payload, limits: limits) else { preconditionFailure("a decoded write is not one CBOR map within the limits") }
    guard case .map(let entries) = value else { preconditionFailure("a message's CBOR value is not a map") }
    for entry in entries {
        guard let key = entry.key.text else { preconditionFailure("a message has a key that is not text") }
        precondition(map[key] == entry.value, "field \(key) differs from the payload's")
    }
}

private func checkServerMessage(_ payload: [UInt8]) {
    let message: IPCServerMessage
    do {
        message = try IPCServerMessage(decoding: payload)
    } catch {
        precondition(decodingCodes.contains(error.code), "unexpected server message error \(error)")
        return
    }
    if case .reply(_, .success(.written)) = message {
        checkFields(of: message.cborValue, in: payload, limits: IPCLimits.serverCBORLimits)
    }
    let encoded = message.encoded()
    do {
        let again = try IPCServerMessage(decoding: encoded)
        precondition(again == message, "server message round trip changed the value")
        precondition(again.encoded() == encoded, "server message encoding is not deterministic")
    } catch {
        preconditionFailure("a server message we encoded does not decode: \(error)")
    }
}

/// Real frames of both directions, alone and back to back.
private func seeds() -> [[UInt8]] {
    func name(_ text: String) -> StreamName { try! StreamName(text) }
    let chat = name("chat")
    let instance = (0..<16).map { UInt8($0) }
    let requests: [IPCRequest] = [
        .hello(minVersion: 1, maxVersion: 1, client: "fuzz"), .create(name: chat, mode: .stream),
        .create(name: name("m.1"), mode: .multicast), .join(name: name("d-2"), address: "streamd1qaddress"), .list,
        .status(name: chat), .address(name: chat, readOnly: true), .close(name: chat, wait: true), .remove(name: chat),
        .write(name: chat, offset: 1 << 40, data: Array("hello".utf8)), .read(name: chat, offset: 5, maxLength: 65536, wait: true),
        .consume(name: chat, offset: 5), .sync(name: chat), .subscribe(names: nil), .subscribe(names: [chat, name("x")]), .daemonStatus,
    ]
    let info = IPCStreamInfo(
        name: chat, role: .multicastReader, state: .failed, bytesWritten: 1, bytesDurable: 1, bytesAcked: 1, bytesReceived: 9,
        bytesConsumed: 2, readable: 7, writeBuffered: 0, writeClosed: true, peerClosed: true, reason: "transport")
    let server: [IPCServerMessage] = [
        .reply(id: 1, .success(.hello(version: 1, daemon: "streamd", instance: instance, features: ["subscribe"]))),
        .reply(id: 2, .success(.created(info, address: "streamd1qaddress"))), .reply(id: 3, .success(.ok)),
        .reply(id: 4, .success(.list([info, info]))), .reply(id: 5, .success(.status(info))),
        .reply(id: 6, .success(.address("streamd1qaddress"))), .reply(id: 7, .success(.written(accepted: 5, offset: 1 << 40))),
        .reply(id: 8, .success(.data(offset: 5, bytes: [1, 2, 3], end: true))), .reply(id: 9, .success(.consumed(offset: 5))),
        .reply(id: 10, .success(.daemonStatus(IPCDaemonStatus(
            version: "0.1", instance: instance, kpclientdConnected: true, kpclientd: "unix", streams: 1, active: 1, damaged: 0, connections: 2)))),
        .reply(id: 11, .failure(IPCError(.wrongOffset, "at 5", expectedOffset: 5))),
        .reply(id: 12, .failure(IPCError(.busy, "full", retryAfterMilliseconds: 100))),
        .event(.dataAvailable(name: chat, offset: 9)), .event(.peerClosed(name: chat)),
        .event(.streamFailed(name: chat, error: IPCError(.damaged, "bad"))), .event(.writeAcknowledged(name: chat, offset: 1)),
        .event(.kpclientd(connected: false)), .goodbye(IPCError(.shuttingDown, "bye")),
    ]
    var seeds = requests.enumerated().map { IPCRequestMessage(id: UInt64($0.offset), request: $0.element).framed() }
    seeds += server.map { $0.framed() }
    seeds.append(seeds[0] + seeds[9] + seeds[10])
    seeds.append(seeds[16] + seeds[28] + [0, 0, 0])  // Ends inside a length prefix.
    seeds.append([0x00, 0x10, 0x00, 0x01] + Array(repeating: 0, count: 16))  // One byte over the limit.
    return seeds
}
