import StreamCrypto
import Testing

@Suite("SecretBox and helpers")
struct SecretBoxTests {
    let key = [UInt8](repeating: 0x42, count: 32)
    let nonce = Array(UInt8(0)..<24)

    @Test("seal then open returns the plaintext, for lengths around block edges")
    func roundTrip() throws {
        for length in [0, 1, 15, 16, 17, 63, 64, 65, 1500, 1813, 4096] {
            let plaintext = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let box = SecretBox.seal(plaintext, key: key, nonce: nonce)
            #expect(box.count == length + SecretBox.macLength)
            let opened = try #require(SecretBox.open(box, key: key, nonce: nonce))
            #expect(opened == plaintext)
        }
    }

    @Test("sealing is deterministic for the same key, nonce and plaintext")
    func deterministic() {
        let a = SecretBox.seal([1, 2, 3], key: key, nonce: nonce)
        #expect(a == SecretBox.seal([1, 2, 3], key: key, nonce: nonce))
        var otherNonce = nonce
        otherNonce[23] ^= 1
        #expect(a != SecretBox.seal([1, 2, 3], key: key, nonce: otherNonce))
    }

    @Test("any flipped bit, wrong key or wrong nonce makes open return nil")
    func tamper() {
        let box = SecretBox.seal(Array(0..<100), key: key, nonce: nonce)
        for index in [0, 15, 16, 50, box.count - 1] {
            var bent = box
            bent[index] ^= 0x01
            #expect(SecretBox.open(bent, key: key, nonce: nonce) == nil, "byte \(index)")
        }
        var wrongKey = key
        wrongKey[0] ^= 0x80
        #expect(SecretBox.open(box, key: wrongKey, nonce: nonce) == nil)
        var wrongNonce = nonce
        wrongNonce[0] ^= 0x80
        #expect(SecretBox.open(box, key: key, nonce: wrongNonce) == nil)
        #expect(SecretBox.open(Array(box.dropLast()), key: key, nonce: nonce) == nil)
        #expect(SecretBox.open(box + [0], key: key, nonce: nonce) == nil)
    }

    @Test("inputs shorter than the tag give nil, never a trap")
    func shortInput() {
        for length in 0..<SecretBox.macLength {
            #expect(SecretBox.open([UInt8](repeating: 0, count: length), key: key, nonce: nonce) == nil)
        }
        // Exactly a tag: an empty plaintext, but only if authentic.
        #expect(SecretBox.open([UInt8](repeating: 0, count: 16), key: key, nonce: nonce) == nil)
        let emptyBox = SecretBox.seal([], key: key, nonce: nonce)
        #expect(SecretBox.open(emptyBox, key: key, nonce: nonce) == [])
    }

    @Test("constantTimeEquals")
    func equality() {
        #expect(constantTimeEquals([], []))
        #expect(constantTimeEquals([1, 2, 3], [1, 2, 3]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2, 4]))
        #expect(!constantTimeEquals([1, 2, 3], [1, 2]))
        #expect(!constantTimeEquals([0], []))
    }

    @Test("secureZero wipes the array in place and leaves other copies alone")
    func zero() {
        var secret: [UInt8] = [9, 8, 7, 6]
        let copy = secret
        secureZero(&secret)
        #expect(secret == [0, 0, 0, 0])
        #expect(copy == [9, 8, 7, 6])
        var empty: [UInt8] = []
        secureZero(&empty)
        #expect(empty.isEmpty)
    }

    @Test("SecureRandom returns the requested lengths and varies")
    func random() {
        #expect(SecureRandom.bytes(0).isEmpty)
        let a = SecureRandom.bytes(32)
        let b = SecureRandom.bytes(32)
        #expect(a.count == 32 && b.count == 32)
        #expect(a != b)
        let values = Set((0..<16).map { _ in SecureRandom.uint64() })
        #expect(values.count == 16)
    }

    @Test("initialize is idempotent and safe from many tasks at once")
    func initializeConcurrently() async {
        await withTaskGroup(of: [UInt8].self) { group in
            for _ in 0..<32 {
                group.addTask {
                    Sodium.initialize()
                    return SHA256.hash([1])
                }
            }
            for await digest in group {
                #expect(digest == SHA256.hash([1]))
            }
        }
    }
}
