import ThinWire

/// BACAP-shaped capabilities and indexes as the simulator makes them (reference §5 layouts).
///
/// The byte layouts are the real ones; the derivations are the simulator's own and documented
/// here, because every blob is opaque to clients:
///
/// - ``keypair(seed:)``: a keyed BLAKE2b stream over the seed yields, in order, the Ed25519
///   seed (32), H (32), then two 64-bit values and K, E (32 each). The first counter is the sum
///   of the two values masked to 62 bits (so of the order of 2^62, never 0 in practice), and the
///   first index is the **successor** of that raw index, as in hpqc.
/// - ``successor(of:)``: `H′ ‖ E′ ‖ K′` = the 96 bytes of
///   `BLAKE2b-512(key: H, "kpclientd-sim index 1" ‖ LE64(Idx64)) ‖ BLAKE2b-256(key: H, "kpclientd-sim index 2" ‖ LE64(Idx64))`,
///   and `Idx64′ = Idx64 + 1` (wrapping). Deterministic, one-way, never rewinds.
/// - ``boxID(publicKey:index:)``: `BLAKE2b-256(key: root public key, "kpclientd-sim box" ‖ index)`.
enum Capabilities {
    struct Keypair: Sendable {
        var writeCap: [UInt8]
        var readCap: [UInt8]
        var firstIndex: [UInt8]
    }

    static func keypair(seed: [UInt8]) -> Keypair {
        var stream: [UInt8] = []
        var block: UInt64 = 0
        let streamKey = SimCrypto.blake2b(seed, outputLength: 64)
        while stream.count < 32 + 32 + 16 + 64 {
            stream += SimCrypto.blake2b(Array("kpclientd-sim keypair".utf8) + Bytes.le64(block), outputLength: 64, key: streamKey)
            block += 1
        }
        var edSeed = Array(stream[0..<32])
        let h = Array(stream[32..<64])
        let mask: UInt64 = (1 << 62) - 1
        let a = Bytes.readLE64(stream, at: 64) & mask
        let b = Bytes.readLE64(stream, at: 72) & mask
        let k = Array(stream[80..<112])
        let e = Array(stream[112..<144])
        let raw = Bytes.le64(a &+ b) + k + e + h
        let first = successor(of: raw)
        let pub = SimCrypto.ed25519PublicKey(seed: edSeed)
        let keypair = Keypair(writeCap: edSeed + pub + first, readCap: pub + first, firstIndex: first)
        SimCrypto.wipe(&edSeed)
        return keypair
    }

    static func successor(of index: [UInt8]) -> [UInt8] {
        precondition(index.count == ThinSizes.messageBoxIndex)
        let counter = Bytes.readLE64(index, at: 0)
        let h = Array(index[72..<104])
        let info = Bytes.le64(counter)
        let first = SimCrypto.blake2b(Array("kpclientd-sim index 1".utf8) + info, outputLength: 64, key: h)
        let second = SimCrypto.blake2b(Array("kpclientd-sim index 2".utf8) + info, outputLength: 32, key: h)
        let material = first + second  // H′ (0..<32) ‖ E′ (32..<64) ‖ K′ (64..<96)
        let hNext = Array(material[0..<32])
        let eNext = Array(material[32..<64])
        let kNext = Array(material[64..<96])
        return Bytes.le64(counter &+ 1) + kNext + eNext + hNext
    }

    static func boxID(publicKey: [UInt8], index: [UInt8]) -> [UInt8] {
        SimCrypto.blake2b(Array("kpclientd-sim box".utf8) + index, outputLength: 32, key: publicKey)
    }
}
