import StreamCrypto
import Testing

/// `SecretBytes`: holds what it was given and never prints it.
@Suite struct SecretBytesTests {
    @Test func holdsItsBytesAndPrintsNoneOfThem() {
        let bytes = Array(UInt8(0xa0)...0xbf)
        let secret = SecretBytes(count: bytes.count) { $0.copyBytes(from: bytes) }
        #expect(secret.count == 32)
        #expect(secret.withUnsafeBytes { Array($0) } == bytes)
        var dumped = ""
        dump(secret, to: &dumped)
        for text in ["\(secret)", String(reflecting: secret), dumped] {
            #expect(!text.contains(hexString(Array(bytes.prefix(4)))))
            #expect(!text.contains(bytes.prefix(4).map(String.init).joined(separator: ", ")))
            #expect(text.contains("redacted"))
        }
    }
}
