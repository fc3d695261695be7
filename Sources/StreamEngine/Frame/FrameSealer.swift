import StreamCrypto

/// Seals frames into boxes and opens boxes into frames for one direction of a stream.
///
/// A box is exactly the transport's payload size: `secretbox(frame plaintext)`, followed in
/// multicast by an Ed25519 signature over `"streamd/v1 box" ‖ BE64(index) ‖ sealed bytes`.
///
/// The direction's secretbox key is derived once, when the sealer is made, and zeroed when the
/// last copy of the sealer goes; each frame's nonce comes from its index (`docs/PROTOCOL.md` §2).
struct FrameSealer: Sendable {
    let frameKey: SecretBytes
    let signingSecretKey: [UInt8]?
    let verifyKey: [UInt8]?
    let boxSize: Int

    /// The smallest box size a stream accepts.
    static let minBoxSize = 256
    /// The largest box size a stream accepts.
    static let maxBoxSize = 1 << 20

    var isSigned: Bool { signingSecretKey != nil || verifyKey != nil }

    /// The plaintext size of every frame: the box size less the MAC and any signature.
    var plaintextSize: Int { boxSize - SecretBox.macLength - (isSigned ? Ed25519.signatureLength : 0) }

    init(outbound keys: OutboundKeys, boxSize: Int) {
        frameKey = StreamKeySchedule.frameKey(frameKeyBase: keys.frameKeyBase)
        signingSecretKey = keys.signingSeed.map { Ed25519.keyPair(seed: $0).secretKey }
        verifyKey = nil
        self.boxSize = boxSize
    }

    init(inbound keys: InboundKeys, boxSize: Int) {
        frameKey = StreamKeySchedule.frameKey(frameKeyBase: keys.frameKeyBase)
        signingSecretKey = nil
        verifyKey = keys.verifyKey
        self.boxSize = boxSize
    }

    /// Seals `frame` into a box of exactly ``boxSize`` bytes.
    func seal(_ frame: Frame) -> [UInt8] { seal(frame, data: frame.data[...]) }

    /// Seals `frame` with `data` in place of its ``Frame/data`` (see
    /// ``Frame/encode(into:data:)``).
    func seal(_ frame: Frame, data: ArraySlice<UInt8>) -> [UInt8] {
        seal(frame, dataCount: data.count) { destination in
            data.withUnsafeBytes { if let source = $0.baseAddress { destination.copyMemory(from: source, byteCount: $0.count) } }
        }
    }

    /// Seals `frame` with `dataCount` bytes that `writeData` copies to the memory it is given in
    /// place of its ``Frame/data`` (see ``Frame/encode(into:dataCount:writingData:)``): a sender
    /// frames bytes straight from its buffer.
    func seal(_ frame: Frame, dataCount: Int, writingData writeData: (UnsafeMutableRawPointer) -> Void) -> [UInt8] {
        // The frame is encoded straight into the box and sealed there.
        var box = withKeyAndNonce(index: frame.index) { key, nonce in
            SecretBox.seal(plaintextCount: plaintextSize, key: key, nonce: nonce) {
                frame.encode(into: $0, dataCount: dataCount, writingData: writeData)
            }
        }
        if let signingSecretKey {
            box += Ed25519.sign(Self.signedMessage(index: frame.index, sealed: box), secretKey: signingSecretKey)
        }
        precondition(box.count == boxSize)
        return box
    }

    /// The sealed part of box `index`, after checking its size and, in multicast, its signature.
    private func sealedPart(of box: [UInt8], index: UInt64) throws(StreamError) -> [UInt8] {
        guard box.count == boxSize else {
            throw StreamError(.frameDecrypt, "box \(index) has \(box.count) bytes, expected \(boxSize)")
        }
        guard let verifyKey else { return box }
        let sealed = Array(box.prefix(boxSize - Ed25519.signatureLength))
        let signature = Array(box.suffix(Ed25519.signatureLength))
        guard Ed25519.verify(signature: signature, message: Self.signedMessage(index: index, sealed: sealed), publicKey: verifyKey) else {
            throw StreamError(.frameDecrypt, "box \(index) is not signed by the stream's writer")
        }
        return sealed
    }

    /// Opens box `index`: checks size and signature, decrypts, decodes, and checks the index.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/frameDecrypt`` if the box does not authenticate,
    ///   ``StreamError/Code-swift.struct/protocolViolation`` if it authenticates but is malformed.
    func open(_ box: [UInt8], index: UInt64) throws(StreamError) -> Frame {
        let sealed = try sealedPart(of: box, index: index)
        guard let plaintext = withKeyAndNonce(index: index, { SecretBox.open(sealed, key: $0, nonce: $1) }) else {
            throw StreamError(.frameDecrypt, "box \(index) failed to authenticate")
        }
        // The last use of the plaintext: the frame's data takes over its storage.
        let frame = try Frame.decode(plaintext)
        guard frame.index == index else {
            throw StreamError(.protocolViolation, "box \(index) holds a frame for index \(frame.index)")
        }
        return frame
    }

    /// Opens box `index` like ``open(_:index:)``, into `plaintext`, a buffer the caller reuses
    /// from box to box (resized to the plaintext size): the frame comes back without its data,
    /// which lies in `plaintext` at `data`. No array is allocated per box.
    func open(_ box: [UInt8], index: UInt64, into plaintext: inout [UInt8]) throws(StreamError) -> (frame: Frame, data: Range<Int>) {
        let sealed = try sealedPart(of: box, index: index)
        if plaintext.count != plaintextSize { plaintext = [UInt8](repeating: 0, count: plaintextSize) }
        let authentic = plaintext.withUnsafeMutableBytes { output in
            withKeyAndNonce(index: index) { SecretBox.open(sealed, key: $0, nonce: $1, into: output) }
        }
        guard authentic else { throw StreamError(.frameDecrypt, "box \(index) failed to authenticate") }
        let header = try Frame.decodeHeader(plaintext)
        guard header.frame.index == index else {
            throw StreamError(.protocolViolation, "box \(index) holds a frame for index \(header.frame.index)")
        }
        return (header.frame, header.dataStart..<(header.dataStart + header.dataLength))
    }

    /// Calls `body` with the direction's key and frame `index`'s nonce.
    @inline(__always)
    private func withKeyAndNonce<R>(index: UInt64, _ body: (_ key: UnsafeRawBufferPointer, _ nonce: UnsafeRawBufferPointer) -> R) -> R {
        frameKey.withUnsafeBytes { key in StreamKeySchedule.withFrameNonce(index: index) { body(key, $0) } }
    }

    private static func signedMessage(index: UInt64, sealed: [UInt8]) -> [UInt8] {
        var message = Array("streamd/v1 box".utf8)
        message.appendBigEndian(index)
        return message + sealed
    }
}
