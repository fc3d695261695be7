import PigeonholeTransport
import StreamEngine

/// The two ends of one new end-to-end stream, each over its own box store (its own thin client).
struct StreamPair {
    let listener: Stream
    let dialer: Stream

    /// Creates an address, listens on `listenerStore` and dials from `dialerStore`.
    static func open(listenerStore: PigeonholeBoxStore, dialerStore: PigeonholeBoxStore, configuration: StreamConfiguration) async throws -> StreamPair {
        let address = StreamAddress.generate(mode: .endToEnd)
        async let listening = Stream.listen(address: address, store: listenerStore, configuration: configuration)
        let dialer = try await Stream.dial(address: address, store: dialerStore, configuration: configuration)
        return StreamPair(listener: try await listening, dialer: dialer)
    }

    /// `count` bytes from a seeded generator, as test data.
    static func data(count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    }

    /// Sends `data` from the dialer (write, sync, half-close) and returns everything the
    /// listener read until the dialer's direction ended.
    func sendFromDialer(_ data: [UInt8]) async throws -> [UInt8] {
        let dialer = dialer
        let sender = Task {
            try await dialer.write(data)
            try await dialer.sync()
            try await dialer.close()
        }
        var received: [UInt8] = []
        received.reserveCapacity(data.count)
        while let chunk = try await listener.read() {
            received += chunk
        }
        try await sender.value
        return received
    }
}
