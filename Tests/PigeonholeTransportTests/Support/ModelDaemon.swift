import CBOR
import NIOCore
import NIOPosix
import ThinClient

/// A scripted kpclientd over a real socket that models what the transport's deadline and
/// waiting-read logic must cope with, in scaled time:
///
/// - every `start_resending_encrypted_message` (and every retry of a waiting read) costs one
///   send tick; a courier round trip takes ``rtt``;
/// - a waiting read of an empty box is retried once per round trip, and the courier refreshes
///   its answer for one envelope only ``redispatchLimit`` times, then answers the cached
///   BoxIDNotFound until ``dedupTTL`` has passed;
/// - ``hangNext`` makes the next N requests hang for ever (a courier that left).
///
/// Box contents are single-stream: the box number is the index's `Idx64` counter.
actor ModelDaemon {
    struct Counters: Sendable {
        var ticks = 0
        var readTicks = 0
        var emptyReadTicks = 0
        var writes = 0
        var cancels: [[UInt8]] = []
        var submittedHashes: [[UInt8]] = []
        var alreadyExists = 0
        /// Read ARQs started, by box counter (each poll is one).
        var readStarts: [UInt64: Int] = [:]
    }

    let rtt: Duration
    let redispatchLimit: Int
    let dedupTTL: Duration
    private(set) var counters = Counters()
    var hangNext = 0
    private var boxes: [UInt64: [UInt8]] = [:]
    private var envelopes: [[UInt8]: (write: Bool, counter: UInt64, payload: [UInt8])] = [:]
    /// Per envelope: how many answers the courier gave, and when its cache entry was made.
    private var courierCache: [[UInt8]: (answers: Int, since: ContinuousClock.Instant)] = [:]
    private var operations: [[UInt8]: (queryID: [UInt8], task: Task<Void, Never>)] = [:]
    private var channel: (any Channel)?
    private var server: (any Channel)?

    init(rtt: Duration, redispatchLimit: Int = 5, dedupTTL: Duration) {
        self.rtt = rtt
        self.redispatchLimit = redispatchLimit
        self.dedupTTL = dedupTTL
    }

    /// Listens on 127.0.0.1 and returns the dial address.
    func start() async throws -> DialAddress {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let (messages, sink) = AsyncStream.makeStream(of: ThinMessage.self)
                    try channel.pipeline.syncOperations.addHandler(ModelFrameHandler(sink: sink))
                    Task {
                        await self.accepted(channel)
                        for await message in messages { await self.receive(message) }
                    }
                }
            }
        let server = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        self.server = server
        return .tcp(host: "127.0.0.1", port: server.localAddress?.port ?? 0, network: .tcp4)
    }

    func stop() async {
        for operation in operations.values { operation.task.cancel() }
        operations = [:]
        try? await channel?.close()
        try? await server?.close()
    }

    func setHangNext(_ count: Int) { hangNext = count }

    func accepted(_ channel: any Channel) {
        self.channel = channel
        send(ThinMessage(ThinKey.Event.connectionStatus, [
            (ThinKey.Field.isConnected, .bool(true)),
            (ThinKey.Field.instanceToken, .bytes([UInt8](repeating: 3, count: 16))),
            (ThinKey.Field.pigeonholeGeometry, .textMap([("MaxPlaintextPayloadLength", .unsigned(64))])),
        ]))
        send(ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .null)]))
    }

    func receive(_ message: ThinMessage) {
        let fields = message.fields
        guard let queryID = try? fields.queryID() else {
            if message.key == ThinKey.Request.sessionToken {
                send(ThinMessage(ThinKey.Event.sessionTokenReply, [
                    (ThinKey.Field.appID, .bytes([UInt8](repeating: 7, count: 16))), (ThinKey.Field.resumed, .bool(false)),
                ]))
            }
            return
        }
        func reply(_ extra: [(String, CBORValue)]) {
            send(ThinMessage(ThinKey.Reply.of(message.key), [(ThinKey.Field.queryID, .bytes(queryID))] + extra + [(ThinKey.Field.errorCode, .unsigned(0))]))
        }
        switch message.key {
        case ThinKey.Request.newKeypair:
            reply([
                (ThinKey.Field.writeCap, .bytes([UInt8](repeating: 1, count: ThinSizes.writeCap))),
                (ThinKey.Field.readCap, .bytes([UInt8](repeating: 2, count: ThinSizes.readCap))),
                (ThinKey.Field.firstMessageIndex, .bytes(Self.index(0))),
            ])
        case ThinKey.Request.nextMessageBoxIndex:
            let counter = (try? fields.bytes(ThinKey.Field.messageBoxIndex)).flatMap { CapabilityLayout.counter(ofIndex: $0) } ?? 0
            reply([(ThinKey.Field.nextMessageBoxIndex, .bytes(Self.index(counter + 1)))])
        case ThinKey.Request.encryptWrite, ThinKey.Request.encryptRead:
            let counter = (try? fields.bytes(ThinKey.Field.messageBoxIndex)).flatMap { CapabilityLayout.counter(ofIndex: $0) } ?? 0
            let hash = (0..<32).map { _ in UInt8.random(in: 0...255) }
            let write = message.key == ThinKey.Request.encryptWrite
            envelopes[hash] = (write, counter, (try? fields.bytes(ThinKey.Field.plaintext)) ?? [])
            reply([
                (ThinKey.Field.messageCiphertext, .bytes([write ? 1 : 0])),
                (ThinKey.Field.envelopeDescriptor, .bytes([9])),
                (ThinKey.Field.envelopeHash, .bytes(hash)),
                (ThinKey.Field.nextMessageBoxIndex, .bytes(Self.index(counter + 1))),
            ])
        case ThinKey.Request.startResendingEncryptedMessage:
            guard let hash = try? fields.bytes(ThinKey.Field.envelopeHash), let envelope = envelopes[hash] else { return }
            counters.submittedHashes.append(hash)
            let noRetry = (try? fields.optionalBool(ThinKey.Field.noRetryOnBoxIDNotFound)) ?? nil ?? false
            let hang = hangNext > 0
            if hang { hangNext -= 1 }
            let task = Task { [self] in
                await self.runARQ(hash: hash, queryID: queryID, envelope: envelope, noRetry: noRetry, hang: hang)
            }
            operations[hash] = (queryID, task)
        case ThinKey.Request.cancelResendingEncryptedMessage:
            if let hash = try? fields.bytes(ThinKey.Field.envelopeHash) {
                counters.cancels.append(hash)
                if let operation = operations.removeValue(forKey: hash) {
                    operation.task.cancel()
                    send(ThinMessage(ThinKey.Reply.startResendingEncryptedMessage, [
                        (ThinKey.Field.queryID, .bytes(operation.queryID)), (ThinKey.Field.errorCode, .unsigned(24)),
                    ]))
                }
            }
            reply([])
        default:
            reply([])
        }
    }

    private func runARQ(hash: [UInt8], queryID: [UInt8], envelope: (write: Bool, counter: UInt64, payload: [UInt8]), noRetry: Bool, hang: Bool) async {
        counters.ticks += 1
        if !envelope.write {
            counters.readTicks += 1
            counters.readStarts[envelope.counter, default: 0] += 1
        }
        if hang {
            try? await Task.sleep(for: .seconds(3600))
            return
        }
        while true {
            do { try await Task.sleep(for: rtt) } catch { return }
            if envelope.write {
                counters.writes += 1
                var code: UInt64 = 0
                if let existing = boxes[envelope.counter] {
                    if existing != envelope.payload {
                        code = 10
                        counters.alreadyExists += 1
                    }
                } else {
                    boxes[envelope.counter] = envelope.payload
                }
                finish(hash, queryID, [(ThinKey.Field.errorCode, .unsigned(code))])
                return
            }
            if let bytes = courierAnswer(hash, envelope.counter) {
                finish(hash, queryID, [(ThinKey.Field.plaintext, .bytes(bytes)), (ThinKey.Field.errorCode, .unsigned(0))])
                return
            }
            if noRetry {
                finish(hash, queryID, [(ThinKey.Field.errorCode, .unsigned(1))])
                return
            }
            // The daemon sends a new SURB for the empty box: one more tick.
            counters.ticks += 1
            counters.readTicks += 1
            counters.emptyReadTicks += 1
        }
    }

    /// The courier's answer for a read envelope: fresh from the replica for the first
    /// `1 + redispatchLimit` answers, then the cached BoxIDNotFound until the TTL passes.
    private func courierAnswer(_ hash: [UInt8], _ counter: UInt64) -> [UInt8]? {
        let now = ContinuousClock.now
        var entry = courierCache[hash] ?? (0, now)
        if now - entry.since >= dedupTTL { entry = (0, now) }
        entry.answers += 1
        courierCache[hash] = entry
        if entry.answers <= 1 + redispatchLimit { return boxes[counter] }
        return nil
    }

    private func finish(_ hash: [UInt8], _ queryID: [UInt8], _ fields: [(String, CBORValue)]) {
        guard operations.removeValue(forKey: hash) != nil else { return }
        send(ThinMessage(ThinKey.Reply.startResendingEncryptedMessage, [(ThinKey.Field.queryID, .bytes(queryID))] + fields))
    }

    /// Writes a box directly, as another writer would (no tick counted here).
    func store(_ counter: UInt64, _ bytes: [UInt8]) {
        boxes[counter] = bytes
    }

    func boxCount() -> Int { boxes.count }

    private func send(_ message: ThinMessage) {
        guard let channel else { return }
        channel.writeAndFlush(channel.allocator.buffer(bytes: ThinFrame.encode(message.value)), promise: nil)
    }

    static func index(_ counter: UInt64) -> [UInt8] {
        var bytes = [UInt8](repeating: 5, count: ThinSizes.messageBoxIndex)
        for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: counter >> (8 * UInt64(i))) }
        return bytes
    }
}

/// Decodes frames and hands them, in order, to the model.
private final class ModelFrameHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var decoder = ThinFrameDecoder()
    private let sink: AsyncStream<ThinMessage>.Continuation

    init(sink: AsyncStream<ThinMessage>.Continuation) { self.sink = sink }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        decoder.append(buffer.readableBytesView)
        while let body = try? decoder.nextFrameBody() {
            if let message = try? ThinMessage(frameBody: body) { sink.yield(message) }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        sink.finish()
        context.fireChannelInactive()
    }
}
