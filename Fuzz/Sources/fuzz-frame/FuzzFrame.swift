import FuzzSupport
import StreamEngine

/// Decodes arbitrary bytes as a frame plaintext. Whatever decodes must re-encode, padded to the
/// same size, to a plaintext that decodes to the same frame; the format is canonical (fixed
/// version, known flags only, zero padding), so the bytes must come back unchanged too.
@_cdecl("fuzz_frame_main")
func fuzzFrameMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if writeSeedsIfRequested(argc, argv, seeds) { return 0 }
    return runLibFuzzer(argc, argv) { data, size in
        check(Array(fuzzInput(data, size)))
        return 0
    }
}

private func check(_ input: [UInt8]) {
    let frame: Frame
    do {
        frame = try Frame.decode(input)
    } catch {
        precondition(error.code == .protocolViolation, "unexpected error code \(error.code)")
        return
    }
    precondition(frame.sackRanges.count <= Frame.maxSackRanges, "too many SACK ranges accepted")
    for (i, range) in frame.sackRanges.enumerated() {
        precondition(range.count > 0 && range.start > frame.cumulativeAck, "invalid SACK range accepted")
        precondition(i == 0 || range.start > frame.sackRanges[i - 1].end, "unordered SACK ranges accepted")
    }
    precondition(frame.dataOffset.addingReportingOverflow(UInt64(frame.data.count)).overflow == false)

    guard frame.data.count <= Frame.dataCapacity(plaintextSize: input.count, sackCount: frame.sackRanges.count) else {
        return
    }
    let encoded = frame.encode(plaintextSize: input.count)
    precondition(encoded.count == input.count, "encode did not pad to the plaintext size")
    let again: Frame
    do {
        again = try Frame.decode(encoded)
    } catch {
        preconditionFailure("re-decoding our own encoding failed: \(error)")
    }
    precondition(again == frame, "round trip changed the frame")
    precondition(encoded == input, "the frame encoding is not canonical")
}

/// Real frame encodings: the plaintext sizes of 256-, 512- and 1 KiB boxes (less the 16-byte
/// MAC) and of a 512-byte multicast box (less the signature too), with and without SACK ranges,
/// data, FIN and PING.
private func seeds() -> [[UInt8]] {
    let ramp = (0..<200).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    let frames: [(Frame, Int)] = [
        (Frame(index: 0, dataOffset: 0), 240),
        (Frame(index: 0, dataOffset: 0, data: Array("hello, stream".utf8)), 496),
        (Frame(index: 7, dataOffset: 4096, cumulativeAck: 3, data: ramp), 496),
        (Frame(index: 12, flags: .ping, dataOffset: 9000, cumulativeAck: 5,
               sackRanges: [IndexRange(start: 7, count: 2), IndexRange(start: 11, count: 1)]), 496),
        (Frame(index: 3, flags: .fin, dataOffset: 1200, cumulativeAck: 2, data: Array(ramp.prefix(50))), 496),
        (Frame(index: 4, flags: .fin, dataOffset: 1250, cumulativeAck: 9,
               sackRanges: (0..<8).map { IndexRange(start: 10 + UInt64($0) * 3, count: 1) }), 496),
        (Frame(index: 1 << 40, flags: [.fin, .ping], dataOffset: UInt64.max - 100, cumulativeAck: 1 << 40,
               sackRanges: [IndexRange(start: (1 << 40) + 2, count: UInt32.max)], data: Array(ramp.prefix(100))), 1008),
        (Frame(index: 2, dataOffset: 300, data: Array(repeating: 0xff, count: 403)), 432),
    ]
    return frames.map { $0.0.encode(plaintextSize: $0.1) }
}
