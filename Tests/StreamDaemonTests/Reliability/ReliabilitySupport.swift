import Foundation
import KpclientdSim
import StreamDaemon

/// The size of a reliability run: `quick` (CI, from `scripts/test`) unless `STREAMD_RELIABILITY=full`
/// (`scripts/reliability`).
enum Reliability {
    /// True for the full runs whose figures go into docs/RELIABILITY.md.
    static let full = ProcessInfo.processInfo.environment["STREAMD_RELIABILITY"] == "full"

    /// `quick` in CI, `full` under `scripts/reliability`.
    static func size<T>(quick: T, full: T) -> T { Self.full ? full : quick }

    /// A seed from `STREAMD_RELIABILITY_SEED`, else a random one (printed by every test, to replay it).
    static func seed() -> UInt64 {
        if let text = ProcessInfo.processInfo.environment["STREAMD_RELIABILITY_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 1 ... .max)
    }

    /// Prints one figure line; `scripts/reliability` collects the lines starting with `RELIABILITY`.
    static func report(_ part: String, _ text: String) {
        print("RELIABILITY \(part) [\(full ? "full" : "quick")] \(text)")
        fflush(nil)
    }
}

/// Minimum, median, maximum (and count) of a sample, for reports.
struct Summary: CustomStringConvertible {
    var values: [Double]

    init(_ values: [Double]) { self.values = values.sorted() }

    var count: Int { values.count }
    var min: Double { values.first ?? 0 }
    var max: Double { values.last ?? 0 }
    var median: Double { percentile(0.5) }

    /// The value at fraction `p` (nearest rank).
    func percentile(_ p: Double) -> Double {
        guard !values.isEmpty else { return 0 }
        let rank = Int((p * Double(values.count)).rounded(.up)) - 1
        return values[Swift.max(0, Swift.min(values.count - 1, rank))]
    }

    var description: String {
        String(format: "n=%d min=%.0f median=%.0f max=%.0f", count, min, median, max)
    }
}

/// The byte a test stream carries at each offset: position-dependent, so a gap, a duplicate or a
/// reordering shows as a mismatch.
enum StreamPattern {
    static func byte(stream: Int, offset: UInt64) -> UInt8 {
        var z = (offset >> 3) &+ UInt64(stream) &* 0x9E37_79B9_7F4A_7C15 &+ 0x632B_E59B_D9B4_E019
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return UInt8(truncatingIfNeeded: z >> ((offset & 7) * 8))
    }

    static func bytes(stream: Int, offset: UInt64, count: Int) -> [UInt8] {
        (0..<count).map { byte(stream: stream, offset: offset + UInt64($0)) }
    }

    /// The offset of the first byte of `bytes` (read at `offset`) that differs from the pattern, if any.
    static func firstMismatch(stream: Int, offset: UInt64, bytes: [UInt8]) -> UInt64? {
        for (index, value) in bytes.enumerated() where value != byte(stream: stream, offset: offset + UInt64(index)) {
            return offset + UInt64(index)
        }
        return nil
    }
}

/// A kpclientd-sim running inside the test process on an ephemeral loopback port.
enum InProcessSimulator {
    static func start(latency: Duration = .milliseconds(2), writeLoss: Double = 0) async throws -> (KpclientdSimulator, KpclientdEndpoint) {
        var configuration = KpclientdSimConfiguration()
        configuration.listen = .tcp(host: "127.0.0.1", port: 0)
        configuration.meanLatency = latency
        configuration.writeLossProbability = writeLoss
        let simulator = try await KpclientdSimulator.start(configuration)
        return (simulator, try KpclientdEndpoint(parsing: simulator.listenAddress.description))
    }
}

/// Milliseconds of a duration.
func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}
