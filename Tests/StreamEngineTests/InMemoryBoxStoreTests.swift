import StreamEngine
import StreamEngineTesting
import Testing

/// `InMemoryBoxStore`'s own semantics, whichever way it holds a channel's boxes.
@Suite struct InMemoryBoxStoreTests {
    func box(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 256) }

    @Test func boxesFarApartAndFilledInLaterAreAllFound() async throws {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = 256
        let store = InMemoryBoxStore(configuration: configuration)
        let channel = try await store.channel(.writerSeed([UInt8](repeating: 7, count: 32)))
        let other = try await store.channel(.writerSeed([UInt8](repeating: 8, count: 32)))
        // Far beyond the boxes so far, then filled in up to and past it, then far beyond again.
        let indices: [UInt64] = [0, 2000, 1000, 2010, 1999, 1 << 40, 3]
        for (n, index) in indices.enumerated() { try await channel.write(index: index, bytes: box(UInt8(n + 1))) }
        for (n, index) in indices.enumerated() {
            #expect(try await channel.read(index: index, mode: .poll) == box(UInt8(n + 1)))
            #expect(try await other.read(index: index, mode: .poll) == nil)
        }
        for index: UInt64 in [1, 1500, 2001, 2011, 5000, (1 << 40) - 1] {
            #expect(try await channel.read(index: index, mode: .poll) == nil)
        }
        // Write-once: the same bytes again succeed, different ones fail.
        try await channel.write(index: 2000, bytes: box(2))
        await #expect(throws: BoxTransportError.self) { try await channel.write(index: 2000, bytes: box(9)) }
        #expect(await store.statistics().boxes == indices.count)
    }

    @Test func aStoreThatForgetsKeepsOnlyTheBoxesNearTheNewest() async throws {
        var configuration = InMemoryBoxStore.Configuration()
        configuration.payloadSize = 256
        configuration.forgetsBoxesBehind = 4
        let store = InMemoryBoxStore(configuration: configuration)
        let channel = try await store.channel(.writerSeed([UInt8](repeating: 7, count: 32)))
        let other = try await store.channel(.writerSeed([UInt8](repeating: 8, count: 32)))
        for index: UInt64 in 0...9 { try await channel.write(index: index, bytes: box(UInt8(index + 1))) }
        try await other.write(index: 0, bytes: box(1))
        // Boxes 0...4 are more than 4 below box 9: gone, and neither readable nor writable.
        for index: UInt64 in 0...4 {
            await #expect(throws: BoxTransportError.self) { try await channel.read(index: index, mode: .poll) }
            await #expect(throws: BoxTransportError.self) { try await channel.write(index: index, bytes: box(UInt8(index + 1))) }
        }
        for index: UInt64 in 5...9 { #expect(try await channel.read(index: index, mode: .poll) == box(UInt8(index + 1))) }
        #expect(try await channel.read(index: 10, mode: .poll) == nil)
        // Each channel forgets on its own.
        #expect(try await other.read(index: 0, mode: .poll) == box(1))
        #expect(await store.statistics().boxes == 6)
    }
}
