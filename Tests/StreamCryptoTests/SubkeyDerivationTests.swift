import StreamCrypto
import Testing

/// `crypto_kdf_derive_from_key` against values computed independently with Python's
/// `hashlib.blake2b(b"", digest_size=n, key=k, salt=LE64(id) + 0⁸, person=ctx + 0⁸)`.
@Suite struct SubkeyDerivationTests {
    static let masterKey = Array(UInt8(0x00)...0x1f)
    static let context = Array("KDF test".utf8)

    @Test func knownAnswers() {
        #expect(hexString(SubkeyDerivation.derive(length: 16, id: 0, context: Self.context, masterKey: Self.masterKey))
                == "e9136a52b9690eb4df4e9665e819a6d3")
        #expect(hexString(SubkeyDerivation.derive(length: 64, id: 1, context: Self.context, masterKey: Self.masterKey))
                == "02507f144fa9bf19010bf7c70b235b4c2663cc00e074f929602a5e2c10a780757d2a3993d06debc378a90efdac196dd841817b977d67b786804f6d3cd585bab5")
        #expect(hexString(SubkeyDerivation.derive(length: 32, id: .max, context: Self.context, masterKey: Self.masterKey))
                == "500c3043b2b9177ec843ecbe9f98f92d8c11fbbd10a225ab844548de89c21d55")
    }

    @Test func contextAndIDSeparateSubkeys() {
        let a = SubkeyDerivation.derive(length: 32, id: 7, context: Self.context, masterKey: Self.masterKey)
        #expect(a != SubkeyDerivation.derive(length: 32, id: 8, context: Self.context, masterKey: Self.masterKey))
        #expect(a != SubkeyDerivation.derive(length: 32, id: 7, context: Array("KDF tesu".utf8), masterKey: Self.masterKey))
        // The temporary-buffer form gives the same bytes.
        let viaBuffer = SubkeyDerivation.withSubkey(length: 32, id: 7, context: Self.context, masterKey: Self.masterKey) { Array($0) }
        #expect(viaBuffer == a)
    }

    @Test func secretBoxWithRawKeyMatchesArrayForm() throws {
        let key = Array(repeating: UInt8(3), count: 32)
        let nonce = Array(repeating: UInt8(4), count: 24)
        let message = Array("raw key and nonce".utf8)
        let box = SecretBox.seal(message, key: key, nonce: nonce)
        let rawBox = key.withUnsafeBytes { k in nonce.withUnsafeBytes { n in SecretBox.seal(message, key: k, nonce: n) } }
        #expect(rawBox == box)
        let opened = key.withUnsafeBytes { k in nonce.withUnsafeBytes { n in SecretBox.open(box, key: k, nonce: n) } }
        #expect(try #require(opened) == message)
    }
}
