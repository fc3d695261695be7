import Logging
import StreamEngine
import ThinClient

/// Settings of a ``PigeonholeBoxStore``.
public struct PigeonholeTransportConfiguration: Sendable {
    /// Box numbers between two cached index anchors, initially (it doubles as the cache fills).
    public var indexAnchorInterval: UInt64 = 64
    /// The most index anchors cached per channel.
    public var maxIndexAnchors: Int = 1024
    /// The most recent exact indexes cached per channel.
    public var maxRecentIndexes: Int = 512
    /// The most `next_message_box_index` steps one lookup may take; a guard against absurd box
    /// numbers.
    public var maxIndexSteps: UInt64 = 1 << 20
    /// How ``BoxReadMode/wait`` reads wait for their box.
    public var waitingReads: WaitingReadStrategy = .poll(PollSchedule())
    /// Where the transport logs. Capabilities and indexes are never logged.
    public var logger: Logger = Logger(label: "streamd.pigeonhole")

    /// Creates the default configuration.
    public init() {}
}

/// A StreamEngine ``BoxStore`` backed by Pigeonhole through kpclientd.
///
/// - A writer seed opens a read-write channel: `new_keypair(seed)` (deterministic in the seed)
///   gives the write capability, the read capability and the first box index.
/// - A read locator is the 136-byte read capability; it opens a read-only channel.
/// - Every box holds exactly the Pigeonhole geometry's `MaxPlaintextPayloadLength` bytes.
public struct PigeonholeBoxStore: BoxStore {
    /// The thin client the store talks through.
    public let client: ThinClient
    /// The store's settings.
    public let configuration: PigeonholeTransportConfiguration

    /// Creates a store over a connected ``ThinClient``.
    public init(client: ThinClient, configuration: PigeonholeTransportConfiguration = PigeonholeTransportConfiguration()) {
        self.client = client
        self.configuration = configuration
    }

    /// The box size: the daemon's `MaxPlaintextPayloadLength`.
    ///
    /// - Throws: ``BoxTransportError/Code-swift.struct/unavailable`` if the daemon has not sent a
    ///   Pigeonhole geometry.
    public func payloadSize() async throws -> Int {
        guard let geometry = await client.pigeonholeGeometry, geometry.maxPlaintextPayloadLength > 0 else {
            throw BoxTransportError(.unavailable, "kpclientd has not sent a Pigeonhole geometry")
        }
        return geometry.maxPlaintextPayloadLength
    }

    /// Opens the channel of a writer seed (read-write) or a read locator (read-only).
    public func channel(_ credential: BoxChannelCredential) async throws -> any BoxChannel {
        try await pigeonholeChannel(credential)
    }

    /// Opens a channel and returns its concrete type, which exposes the index cache.
    ///
    /// - Parameters:
    ///   - credential: a 32-byte writer seed or a 136-byte read locator.
    ///   - indexSnapshot: cached indexes from an earlier ``PigeonholeBoxChannel/indexSnapshot()``.
    public func pigeonholeChannel(_ credential: BoxChannelCredential, indexSnapshot: BoxIndexSnapshot? = nil) async throws
        -> PigeonholeBoxChannel
    {
        let size = try await payloadSize()
        let channel: PigeonholeBoxChannel
        switch credential {
        case .writerSeed(let seed):
            try checkSeed(seed)
            let keys: NewKeypair
            do {
                keys = try await client.newKeypair(seed: seed)
            } catch {
                throw boxTransportError(error, operation: "new_keypair")
            }
            channel = PigeonholeBoxChannel(
                client: client, payloadSize: size, writeCapability: keys.writeCapability, readCapability: keys.readCapability,
                firstIndex: keys.firstMessageIndex, configuration: configuration
            )
        case .readLocator(let locator):
            let readCapability: ReadCapability
            do {
                readCapability = try ReadCapability(bytes: locator)
            } catch {
                throw BoxTransportError(.permissionDenied, "a read locator must be a \(ReadCapability.length)-byte read capability")
            }
            channel = PigeonholeBoxChannel(
                client: client, payloadSize: size, writeCapability: nil, readCapability: readCapability,
                firstIndex: readCapability.embeddedIndex, configuration: configuration
            )
        }
        if let indexSnapshot {
            try await channel.restoreIndexes(indexSnapshot)
        }
        return channel
    }

    /// The read locator of the channel written with `seed`: its 136-byte read capability.
    public func readLocator(forWriterSeed seed: [UInt8]) async throws -> [UInt8] {
        try checkSeed(seed)
        do {
            return try await client.newKeypair(seed: seed).readCapability.bytes
        } catch {
            throw boxTransportError(error, operation: "new_keypair")
        }
    }
}

private func checkSeed(_ seed: [UInt8]) throws {
    guard seed.count == 32 else {
        throw BoxTransportError(.permissionDenied, "a writer seed must be 32 bytes, got \(seed.count)")
    }
}

/// Turns an error of a thin-client call into a ``BoxTransportError``.
func boxTransportError(_ error: any Error, operation: String) -> BoxTransportError {
    switch error {
    case let error as ThinClientError: return BoxTransportError(error, operation: operation)
    case let error as BoxTransportError: return error
    case is CancellationError: return BoxTransportError(.cancelled, "\(operation) was cancelled")
    default: return BoxTransportError(.failed, "\(operation) failed: \(error)")
    }
}

extension BoxTransportError {
    /// Maps a thin-client error: transient conditions stay transient, capability problems
    /// become ``Code-swift.struct/permissionDenied``, a replica's BoxAlreadyExists becomes
    /// ``Code-swift.struct/alreadyExists``.
    init(_ error: ThinClientError, operation: String) {
        let message = "\(operation): \(error.description)"
        switch error.code {
        case .boxAlreadyExists:
            self.init(.alreadyExists, message)
        case .cancelled, .startResendingCancelled:
            self.init(.cancelled, message)
        case .timeout, .daemonTimeout:
            self.init(.timeout, message)
        case .notConnected, .connectionLost, .closed, .daemonOffline, .serviceUnavailable, .tooManyPendingRequests,
            .daemonConnectionLost, .handshakeFailed:
            self.init(.unavailable, message)
        case .permissionDenied, .invalidWriteCapability, .invalidReadCapability:
            self.init(.permissionDenied, message)
        default:
            self.init(.failed, message)
        }
    }
}
