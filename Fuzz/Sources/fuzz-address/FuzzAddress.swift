import FuzzSupport
import StreamCrypto
import StreamEngine

/// Parses arbitrary text as a stream address; whatever parses must survive `encoded` and parse
/// back to the same address.
///
/// Random text almost never passes the 4-byte checksum, so each input is also tried a second
/// way: as the checksummed payload (`kind ‖ body`), which the harness completes with a valid
/// checksum and base32 text. That reaches the kind and length checks behind the checksum, and
/// an accepted address must then encode to exactly that text.
@_cdecl("fuzz_address_main")
func fuzzAddressMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    if writeSeedsIfRequested(argc, argv, seeds) { return 0 }
    return runLibFuzzer(argc, argv) { data, size in
        let input = fuzzInput(data, size)
        check(String(decoding: input, as: UTF8.self), canonical: false)
        // The longest valid payload is a read-only address with a 1 KiB locator: 1091 bytes.
        if !input.isEmpty && input.count <= 1100 {
            let content = Array(input)
            let checksum = BLAKE2b.hash(Array("kps1".utf8) + content, outputLength: 32).prefix(4)
            check("kps1" + base32(content + checksum), canonical: true)
        }
        return 0
    }
}

private func check(_ text: String, canonical: Bool) {
    let address: StreamAddress
    do {
        address = try StreamAddress(parsing: text)
    } catch {
        precondition(error.code == .invalidAddress, "unexpected error code \(error.code)")
        return
    }
    let encoded = address.encoded
    precondition(encoded.hasPrefix("kps1") && encoded.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x7a).contains($0) },
                 "encoded address is not lowercase base32")
    if canonical { precondition(encoded == text, "a canonical address re-encoded differently") }
    let again: StreamAddress
    do {
        again = try StreamAddress(parsing: encoded)
    } catch {
        preconditionFailure("re-parsing our own encoding failed: \(error)")
    }
    precondition(again == address, "round trip changed the address")
    precondition(!address.description.contains(encoded), "description leaks the address")
    // Deriving keys must not trap for any accepted address, whichever role asks.
    _ = try? address.keys(as: .listener)
    _ = try? address.keys(as: .dialer)
}

/// RFC 4648 base32, lowercase, unpadded (the address alphabet), written independently of
/// StreamEngine's so that the harness checks it rather than repeats it.
private func base32(_ bytes: [UInt8]) -> String {
    let alphabet = Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count * 8 + 4) / 5)
    var i = 0
    while i < bytes.count {
        // Up to 5 bytes make up to 8 characters.
        let n = min(5, bytes.count - i)
        var value: UInt64 = 0
        for j in 0..<5 { value = value << 8 | UInt64(j < n ? bytes[i + j] : 0) }
        for k in 0..<((n * 8 + 4) / 5) { out.append(alphabet[Int((value >> UInt64(35 - 5 * k)) & 31)]) }
        i += 5
    }
    return String(decoding: out, as: UTF8.self)
}

/// Real addresses of every kind, as text, and their checksummed payloads (for the second way).
private func seeds() -> [[UInt8]] {
    let secret = (0..<32).map { UInt8($0) }
    let addresses = [
        StreamAddress(.endToEnd(secret: secret)),
        StreamAddress(.multicastWriter(secret: secret.reversed())),
        StreamAddress(.multicastReader(frameKeyBase: secret, verifyKey: secret.map { $0 ^ 0x5a }, readLocator: [])),
        StreamAddress(.multicastReader(frameKeyBase: secret, verifyKey: secret.map { $0 ^ 0x5a },
                                       readLocator: (0..<136).map { UInt8(truncatingIfNeeded: $0 * 3) })),
    ]
    var seeds = addresses.map { Array($0.encoded.utf8) }
    seeds.append(Array(("  " + addresses[0].encoded.uppercased() + "\n").utf8))
    seeds.append([1] + secret)
    seeds.append([2] + secret)
    seeds.append([3] + secret + secret + [0, 8] + Array("locator!".utf8))
    return seeds
}
