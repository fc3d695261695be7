@testable import StreamEngine
import Testing

/// A stream that writes at a low rate (issue 9's low-rate latency): its newest frame goes out
/// with confirmation copies at once and is flagged quiet, and the peer reads the box after it
/// with several reads. A busy stream does neither.
@Suite struct QuietStreamTests {
    static let boxSize = 512

    func machine(_ role: StreamRole, configuration: StreamConfiguration = StreamConfiguration(), seed: UInt64 = 1) throws -> StreamMachine {
        try StreamMachine(
            address: StreamAddress(.endToEnd(secret: vectorSecret)), role: role, boxSize: Self.boxSize,
            configuration: configuration, now: .zero, randomSeed: seed)
    }

    /// The writes among `actions`: operation and box index.
    func writes(_ actions: [StreamAction]) -> [(operation: OperationID, index: UInt64, bytes: [UInt8])] {
        actions.compactMap { if case .write(let operation, let index, let bytes) = $0 { (operation, index, bytes) } else { nil } }
    }

    /// The inbound reads among `actions`: operation and box index.
    func reads(_ actions: [StreamAction]) -> [(operation: OperationID, index: UInt64)] {
        actions.compactMap { if case .read(let operation, .inbound, let index, _) = $0 { (operation, index) } else { nil } }
    }

    /// A small write on an idle stream goes out three times at once, byte-identical, and the
    /// frame carries the quiet flag; the copies make no round-trip sample ambiguous.
    @Test func aQuietFrameGoesOutWithItsCopiesAtOnce() throws {
        var writer = try machine(.listener)
        try writer.appWrite([1, 2, 3], now: .zero)
        let sent = writes(writer.takeActions())
        #expect(sent.count == 1 + StreamConfiguration().quietFrameCopies)
        #expect(Set(sent.map(\.index)) == [0])
        #expect(Set(sent.map(\.bytes)).count == 1)
        #expect(writer.sendStatistics.confirmationCopies == 2)
        #expect(writer.sendStatistics.firstSends == 1)
        let frame = try #require(try machine(.dialer).inboundSealer).open(sent[0].bytes, index: 0)
        #expect(frame.flags.contains(.quiet))
    }

    /// A failed copy is written again at once (the first write may have been lost without a
    /// word); copies that succeed, and the first write's outcome, change nothing else.
    @Test func aFailedCopyIsWrittenAgain() throws {
        var writer = try machine(.listener)
        try writer.appWrite([1, 2, 3], now: .zero)
        let sent = writes(writer.takeActions())
        writer.writeCompleted(sent[1].operation, result: .failure(BoxTransportError(.timeout, "lost")), now: .zero + .milliseconds(300))
        let again = writes(writer.takeActions())
        #expect(again.map(\.index) == [0])
        #expect(again.first?.bytes == sent[0].bytes)
        writer.writeCompleted(sent[0].operation, result: .success(()), now: .zero + .milliseconds(400))
        writer.writeCompleted(sent[2].operation, result: .success(()), now: .zero + .milliseconds(500))
        #expect(writes(writer.takeActions()).isEmpty)
    }

    /// A busy stream makes no copies and flags nothing: later frames reveal a loss through
    /// selective acknowledgements. With copies off, a quiet frame is neither copied nor flagged.
    @Test func aBusyStreamMakesNoCopies() throws {
        var configuration = StreamConfiguration()
        configuration.maxWriteBuffer = 10_000
        var busy = try machine(.listener, configuration: configuration)
        try busy.appWrite(Array(repeating: 7, count: 5000), now: .zero)
        let sent = writes(busy.takeActions())
        #expect(sent.count >= 3)
        #expect(Set(sent.map(\.index)).count == sent.count)
        #expect(busy.sendStatistics.confirmationCopies == 0)

        configuration.quietFrameCopies = 0
        var unconfirmed = try machine(.listener, configuration: configuration)
        try unconfirmed.appWrite([1, 2, 3], now: .zero)
        #expect(writes(unconfirmed.takeActions()).count == 1)
        #expect(unconfirmed.sendStatistics.confirmationCopies == 0)
    }

    /// After reading a quiet frame, the reader keeps `parallelReadsAfterQuietFrame` reads on
    /// the next box; the first to return the frame delivers it and the others are cancelled.
    /// After a frame that is not quiet, it keeps one.
    @Test func theReaderReadsTheBoxAfterAQuietFrameSeveralTimes() throws {
        var writer = try machine(.listener)
        var reader = try machine(.dialer, seed: 2)
        var pendingReads = reads(reader.takeActions())
        func deliver(_ box: [UInt8], index: UInt64) throws {
            let read = try #require(pendingReads.first { $0.index == index }, "a read of box \(index)")
            reader.readCompleted(read.operation, result: .success(box), now: .zero + .seconds(1))
            pendingReads.removeAll { $0.operation == read.operation }
        }
        try writer.appWrite([1, 2, 3], now: .zero)
        let quietBox = try #require(writes(writer.takeActions()).first)
        try deliver(quietBox.bytes, index: 0)
        let after = reader.takeActions()
        pendingReads += reads(after)
        let readsOfBox1 = pendingReads.filter { $0.index == 1 }
        #expect(readsOfBox1.count == StreamConfiguration().parallelReadsAfterQuietFrame)

        // The next frame arrives through one of them; the others are cancelled.
        try writer.appWrite([4, 5, 6], now: .zero + .seconds(5))
        let next = try #require(writes(writer.takeActions()).first)
        try deliver(next.bytes, index: 1)
        let cancelled = reader.takeActions().compactMap { if case .cancel(let operation) = $0 { operation } else { nil } }
        #expect(readsOfBox1.filter { cancelled.contains($0.operation) }.count == readsOfBox1.count - 1)
        #expect(reader.checkpoint.readableCount == 6)
    }
}
