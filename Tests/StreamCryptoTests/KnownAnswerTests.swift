import StreamCrypto
import Testing

@Suite("RFC known-answer tests")
struct KnownAnswerTests {
    struct HKDFCase: Sendable, CustomTestStringConvertible {
        var name: String
        var ikm: [UInt8]
        var salt: [UInt8]
        var info: [UInt8]
        var prk: String
        var okm: String
        var testDescription: String { name }
    }

    static let hkdfCases: [HKDFCase] = [
        HKDFCase(
            name: "RFC 5869 A.1", ikm: [UInt8](repeating: 0x0b, count: 22), salt: Array(0x00...0x0c), info: Array(0xf0...0xf9),
            prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
            okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
        HKDFCase(
            name: "RFC 5869 A.2", ikm: Array(0x00...0x4f), salt: Array(0x60...0xaf), info: Array(0xb0...0xff),
            prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
            okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
                + "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
                + "cc30c58179ec3e87c14c01d5c1f3434f1d87"),
        HKDFCase(
            name: "RFC 5869 A.3", ikm: [UInt8](repeating: 0x0b, count: 22), salt: [], info: [],
            prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
            okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
    ]

    @Test("HKDF-SHA256", arguments: hkdfCases)
    func hkdf(_ c: HKDFCase) {
        let prk = HKDF.extract(salt: c.salt, inputKeyMaterial: c.ikm)
        #expect(hexString(prk) == c.prk)
        let length = c.okm.count / 2
        #expect(hexString(HKDF.expand(pseudoRandomKey: prk, info: c.info, outputLength: length)) == c.okm)
        #expect(hexString(HKDF.deriveKey(inputKeyMaterial: c.ikm, salt: c.salt, info: c.info, outputLength: length)) == c.okm)
        // Every shorter output is a prefix of the longer one.
        for shorter in [0, 1, 31, 32, 33] {
            let okm = HKDF.expand(pseudoRandomKey: prk, info: c.info, outputLength: shorter)
            #expect(hexString(okm) == String(c.okm.prefix(2 * shorter)))
        }
    }

    @Test("HKDF produces the maximum length")
    func hkdfMaximum() {
        let okm = HKDF.deriveKey(inputKeyMaterial: [1, 2, 3], salt: [], info: [], outputLength: HKDF.maxOutputLength)
        #expect(okm.count == 8160)
        // Block 255 differs from block 254: the counter advanced all the way.
        #expect(Array(okm[8128...]) != Array(okm[8096..<8128]))
    }

    @Test("HMAC-SHA256, RFC 4231 cases 1, 2 and 6")
    func hmac() {
        #expect(
            hexString(HMACSHA256.authenticate(Array("Hi There".utf8), key: [UInt8](repeating: 0x0b, count: 20)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(
            hexString(HMACSHA256.authenticate(Array("what do ya want for nothing?".utf8), key: Array("Jefe".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(
            hexString(
                HMACSHA256.authenticate(
                    Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                    key: [UInt8](repeating: 0xaa, count: 131)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test("SHA-256 of the empty string and of \"abc\" (FIPS 180-2)")
    func sha256() {
        #expect(hexString(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hexString(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("BLAKE2b: RFC 7693 \"abc\", plus unkeyed and keyed 32-byte digests")
    func blake2b() {
        #expect(
            hexString(BLAKE2b.hash(Array("abc".utf8), outputLength: 64))
                == "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
                + "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923")
        // Cross-checked with Python's hashlib.blake2b.
        #expect(hexString(BLAKE2b.hash([])) == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        #expect(
            hexString(BLAKE2b.hash(Array("abc".utf8), key: Array(0...31)))
                == "d63a32d3e44738d7907f964316c241adaba0abfeabc32349677578a15a203f7f")
        #expect(BLAKE2b.hash([1], outputLength: 16).count == 16)
    }

    @Test("Ed25519, RFC 8032 tests 1 and 2")
    func ed25519() {
        let cases: [(seed: String, publicKey: String, message: String, signature: String)] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                    + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                    + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ),
        ]
        for c in cases {
            let pair = Ed25519.keyPair(seed: hex(c.seed))
            #expect(hexString(pair.publicKey) == c.publicKey)
            #expect(pair.secretKey == hex(c.seed) + hex(c.publicKey))
            let signature = Ed25519.sign(hex(c.message), secretKey: pair.secretKey)
            #expect(hexString(signature) == c.signature)
            #expect(Ed25519.verify(signature: signature, message: hex(c.message), publicKey: pair.publicKey))
            // Any change to message, signature or key fails.
            #expect(!Ed25519.verify(signature: signature, message: hex(c.message) + [0], publicKey: pair.publicKey))
            var bent = signature
            bent[10] ^= 1
            #expect(!Ed25519.verify(signature: bent, message: hex(c.message), publicKey: pair.publicKey))
            var otherKey = pair.publicKey
            otherKey[0] ^= 1
            #expect(!Ed25519.verify(signature: signature, message: hex(c.message), publicKey: otherKey))
        }
    }

    @Test("Ed25519.verify returns false for wrong lengths instead of trapping")
    func ed25519Lengths() {
        let pair = Ed25519.keyPair(seed: [UInt8](repeating: 7, count: 32))
        let signature = Ed25519.sign([1, 2, 3], secretKey: pair.secretKey)
        for length in [0, 1, 63, 65, 200] {
            let sig = Array((signature + signature + signature + signature).prefix(length))
            #expect(!Ed25519.verify(signature: sig, message: [1, 2, 3], publicKey: pair.publicKey))
        }
        for length in [0, 31, 33, 64] {
            let key = Array((pair.publicKey + pair.publicKey + pair.publicKey).prefix(length))
            #expect(!Ed25519.verify(signature: signature, message: [1, 2, 3], publicKey: key))
        }
    }
}
