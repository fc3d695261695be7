import StreamCrypto
import Testing

/// The independent vectors of katzenpost-stream-design.md §8 (Go 1.19, x/crypto hkdf and
/// nacl/secretbox), used verbatim.
@Suite("Katzenpost stream vectors (design doc §8)")
struct StreamVectorTests {
    static let salt = Array("stream_reader_writer_keymaterial".utf8)
    static let secret = Array(UInt8(0x00)...0x1f)

    /// HKDF (Extract + Expand), info empty, the stream salt; the first 64 bytes.
    static func split(_ ikm: [UInt8]) -> (first: [UInt8], second: [UInt8]) {
        let okm = HKDF.deriveKey(inputKeyMaterial: ikm, salt: salt, info: [], outputLength: 64)
        return (Array(okm[0..<32]), Array(okm[32..<64]))
    }

    static func frameID(_ idBase: [UInt8], _ index: UInt64) -> [UInt8] { SHA256.hash(idBase + bigEndian64(index)) }
    static func frameKey(_ key: [UInt8], _ index: UInt64) -> [UInt8] { SHA256.hash(key + bigEndian64(index)) }

    @Test("salt is 32 bytes")
    func saltLength() {
        #expect(Self.salt.count == 32)
    }

    @Test("listener and dialer secrets")
    func directionSecrets() {
        let (listener, dialer) = Self.split(Self.secret)
        #expect(hexString(listener) == "8246c13a6853d18652d116718ff66e566e94870766e3d83e1334e21624b94654")
        #expect(hexString(dialer) == "019f33a9e26cbbc012b4fd90b964839febfa6ca77c5111b9d0c5f2d8a3d7e8de")
    }

    @Test("keys and ID bases of both directions")
    func keysAndIDBases() {
        let (listener, dialer) = Self.split(Self.secret)
        let (ldKey, ldIDBase) = Self.split(listener)
        #expect(hexString(ldKey) == "3fdb291a6630228678158141bf991a99d3db7b144355cc7e4be59d0d0b7904c2")
        #expect(hexString(ldIDBase) == "20cb2e7e065493d0e3131a424f3b05a5c8858f455ec857f17f1a211e49c4e754")
        let (dlKey, dlIDBase) = Self.split(dialer)
        #expect(hexString(dlKey) == "ead180c1a5e109dcbd86b0013ec866e527accd98e6c779098c306cd847f9ef96")
        #expect(hexString(dlIDBase) == "fbf352c2c7e990e0c3a77ac9c59e3eadbfb6a6196131b64886788eb6125e204b")
    }

    @Test("frame IDs and keys for L→D frames 0 and 1")
    func frames() {
        let (listener, _) = Self.split(Self.secret)
        let (key, idBase) = Self.split(listener)
        #expect(hexString(Self.frameID(idBase, 0)) == "739712e2e01579d610fcdf132956b9c69d51d170a758d7ab03ce68e99a87c72b")
        #expect(hexString(Self.frameKey(key, 0)) == "0330e573846e591c3b6a754811f88b65bb1e42fac51c0b8227d0f8370ed91f18")
        #expect(hexString(Self.frameID(idBase, 1)) == "68f2e0e89a12ff05d967e97088162ab1470e76d132698b1d33aa7991ca27b51b")
        #expect(hexString(Self.frameKey(key, 1)) == "95f1bba13dda7c90770879e0ac69e6dfccd5a632a7ee9bd44f268bf4a4544943")
    }

    @Test("secretbox of the padded 38-byte frame with the L→D frame-0 key and nonce")
    func sealedFrame() throws {
        let frame = hex("a4645479706500624964006341636b1bffffffffffffffff675061796c6f61644568656c6c6f")
        #expect(frame.count == 38)
        let padded = frame + [UInt8](repeating: 0, count: 1813 - frame.count)
        let key = hex("0330e573846e591c3b6a754811f88b65bb1e42fac51c0b8227d0f8370ed91f18")
        let nonce = Array(hex("739712e2e01579d610fcdf132956b9c69d51d170a758d7ab03ce68e99a87c72b")[0..<24])
        let box = SecretBox.seal(padded, key: key, nonce: nonce)
        #expect(box.count == 1829)
        #expect(hexString(Array(box[0..<32])) == "95a73ca0cd1b9e796fa054d1e5c83579e9f10fe543205d8747247d5053bffd4d")
        #expect(hexString(SHA256.hash(box)) == "5793634cf2ad669f82eb46805c72394092f090fb6a58ad4d14e2ef6b322c0c45")
        #expect(try #require(SecretBox.open(box, key: key, nonce: nonce)) == padded)
        // The frame-1 key does not open it.
        #expect(SecretBox.open(box, key: hex("95f1bba13dda7c90770879e0ac69e6dfccd5a632a7ee9bd44f268bf4a4544943"), nonce: nonce) == nil)
    }
}
