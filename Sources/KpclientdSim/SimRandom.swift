#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The simulator's source of randomness: the OS CSPRNG, or a reproducible stream from `--seed`.
///
/// The seeded stream is BLAKE2b-512 in counter mode keyed with the seed, so runs with the same
/// seed and the same sequence of requests draw the same bytes.
struct SimRandom: Sendable {
    private var seedKey: [UInt8]?
    private var counter: UInt64 = 0
    private var pool: [UInt8] = []

    /// A generator drawing from the OS, or reproducibly from `seed` when given.
    init(seed: UInt64?) {
        if let seed {
            seedKey = SimCrypto.blake2b(Array("kpclientd-sim seed".utf8) + Bytes.le64(seed), outputLength: 32)
        }
    }

    /// Whether the generator is reproducible.
    var isSeeded: Bool { seedKey != nil }

    /// `count` random bytes.
    mutating func bytes(_ count: Int) -> [UInt8] {
        guard let key = seedKey else { return SimCrypto.randomBytes(count) }
        while pool.count < count {
            pool += SimCrypto.blake2b(Bytes.le64(counter), outputLength: 64, key: key)
            counter &+= 1
        }
        let out = Array(pool.prefix(count))
        pool.removeFirst(count)
        return out
    }

    /// A uniform `UInt64`.
    mutating func uint64() -> UInt64 { Bytes.readLE64(bytes(8), at: 0) }

    /// A uniform double in [0, 1).
    mutating func unit() -> Double { Double(uint64() >> 11) * 0x1p-53 }

    /// An exponentially distributed sample with the given mean (0 when the mean is 0).
    mutating func exponential(mean: Double) -> Double {
        guard mean > 0 else { return 0 }
        let u = unit()
        return -mean * log(1 - u)
    }
}

/// Small byte helpers.
enum Bytes {
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    static func be32(_ v: UInt32) -> [UInt8] { (0..<4).reversed().map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
    static func readLE64<C: RandomAccessCollection>(_ b: C, at offset: Int) -> UInt64 where C.Element == UInt8, C.Index == Int {
        var v: UInt64 = 0
        for i in (0..<8).reversed() { v = v << 8 | UInt64(b[b.startIndex + offset + i]) }
        return v
    }
    static func readBE32<C: RandomAccessCollection>(_ b: C, at offset: Int) -> UInt32 where C.Element == UInt8, C.Index == Int {
        var v: UInt32 = 0
        for i in 0..<4 { v = v << 8 | UInt32(b[b.startIndex + offset + i]) }
        return v
    }
    /// Copies `bytes` into exactly `length` bytes: truncated or zero-padded, as Go's CBOR decoder
    /// does for fixed-size arrays.
    static func fixed(_ bytes: [UInt8], length: Int) -> [UInt8] {
        bytes.count >= length ? Array(bytes.prefix(length)) : bytes + [UInt8](repeating: 0, count: length - bytes.count)
    }
}

