import StreamCrypto

/// A shareable, versioned, checksummed stream address.
///
/// The text form is `kps1` followed by lowercase base32 of `kind ‖ body ‖ checksum`, where
/// the checksum is the first 4 bytes of BLAKE2b-256 over `"kps1" ‖ kind ‖ body`. A mistyped
/// address fails with ``StreamError/Code-swift.struct/invalidAddress`` and says where.
///
/// - Important: An address is a secret capability. ``description`` redacts it; use
///   ``encoded`` only to hand the address to a peer.
public struct StreamAddress: Sendable, Hashable, CustomStringConvertible {
    /// What the address lets its holder do.
    public enum Kind: Sendable, Hashable {
        /// Both ends of an end-to-end stream: a 32-byte secret.
        case endToEnd(secret: [UInt8])
        /// The writer of a multicast stream: a 32-byte secret.
        case multicastWriter(secret: [UInt8])
        /// A reader of a multicast stream: it can decrypt and verify frames, but neither
        /// write boxes nor forge frames.
        case multicastReader(frameKeyBase: [UInt8], verifyKey: [UInt8], readLocator: [UInt8])
    }

    /// The address's capability.
    public var kind: Kind

    static let prefix = "kps1"
    static let checksumLength = 4
    static let maxLocatorLength = 1024

    /// Creates an address of the given kind.
    public init(_ kind: Kind) { self.kind = kind }

    /// Generates a fresh random address for a new stream.
    public static func generate(mode: StreamMode = .endToEnd) -> StreamAddress {
        let secret = SecureRandom.bytes(32)
        return StreamAddress(mode == .endToEnd ? .endToEnd(secret: secret) : .multicastWriter(secret: secret))
    }

    /// The stream mode this address belongs to.
    public var mode: StreamMode {
        if case .endToEnd = kind { return .endToEnd }
        return .multicast
    }

    /// Derives the read-only address that multicast readers use.
    ///
    /// - Parameter store: the box store, which turns the writer's box seed into a read locator.
    public func readOnly(store: any BoxStore) async throws -> StreamAddress {
        switch kind {
        case .multicastReader:
            return self
        case .endToEnd:
            throw StreamError(.invalidAddress, "only multicast streams have read-only addresses")
        case .multicastWriter(let secret):
            let direction = StreamKeySchedule.direction(secret: secret, from: .listener)
            let verifyKey = Ed25519.keyPair(seed: direction.signingSeed).publicKey
            let locator = try await store.readLocator(forWriterSeed: direction.boxSeed)
            return StreamAddress(.multicastReader(frameKeyBase: direction.frameKeyBase, verifyKey: verifyKey, readLocator: locator))
        }
    }

    /// The address as text, to give to a peer.
    public var encoded: String {
        var payload: [UInt8]
        switch kind {
        case .endToEnd(let secret): payload = [1] + secret
        case .multicastWriter(let secret): payload = [2] + secret
        case .multicastReader(let base, let verifyKey, let locator):
            payload = [3] + base + verifyKey + [UInt8(locator.count >> 8), UInt8(locator.count & 0xff)] + locator
        }
        payload += Self.checksum(payload)
        return Self.prefix + Base32.encode(payload)
    }

    /// Parses an address from text; surrounding whitespace is ignored and case does not matter.
    public init(parsing text: String) throws(StreamError) {
        guard text.utf8.count <= 8192 else { throw StreamError(.invalidAddress, "the address is too long") }
        var body = Substring(text)
        while body.first?.isWhitespace == true { body.removeFirst() }
        while body.last?.isWhitespace == true { body.removeLast() }
        guard body.lowercased().hasPrefix(Self.prefix) else {
            throw StreamError(.invalidAddress, "a stream address starts with \"\(Self.prefix)\"")
        }
        guard body.utf8.count <= 4096 else { throw StreamError(.invalidAddress, "the address is too long") }
        let encoded = body.dropFirst(Self.prefix.count)
        let payload: [UInt8]
        switch Base32.decode(encoded) {
        case .success(let bytes): payload = bytes
        case .failure(let invalid):
            throw StreamError(.invalidAddress, "invalid character at position \(invalid.position + Self.prefix.count + 1) of the address")
        }
        guard payload.count > Self.checksumLength + 1 else { throw StreamError(.invalidAddress, "the address is too short") }
        let content = Array(payload.dropLast(Self.checksumLength))
        guard constantTimeEquals(Array(payload.suffix(Self.checksumLength)), Self.checksum(content)) else {
            throw StreamError(.invalidAddress, "the address checksum does not match: it was mistyped or truncated")
        }
        let body32 = Array(content.dropFirst())
        switch content[0] {
        case 1, 2:
            guard body32.count == 32 else { throw StreamError(.invalidAddress, "the address has the wrong length") }
            kind = content[0] == 1 ? .endToEnd(secret: body32) : .multicastWriter(secret: body32)
        case 3:
            guard body32.count >= 66 else { throw StreamError(.invalidAddress, "the read-only address is too short") }
            let length = Int(body32[64]) << 8 | Int(body32[65])
            guard length <= Self.maxLocatorLength, body32.count == 66 + length else {
                throw StreamError(.invalidAddress, "the read-only address has the wrong length")
            }
            kind = .multicastReader(
                frameKeyBase: Array(body32[0..<32]), verifyKey: Array(body32[32..<64]), readLocator: Array(body32[66...]))
        default:
            throw StreamError(.invalidAddress, "unknown address kind \(content[0]); a newer streamd may have made it")
        }
    }

    public var description: String {
        switch kind {
        case .endToEnd: return "StreamAddress(end-to-end, redacted)"
        case .multicastWriter: return "StreamAddress(multicast writer, redacted)"
        case .multicastReader: return "StreamAddress(multicast reader, redacted)"
        }
    }

    static func checksum(_ content: [UInt8]) -> [UInt8] {
        Array(BLAKE2b.hash(Array(prefix.utf8) + content, outputLength: 32).prefix(checksumLength))
    }

    /// The keys one end of the stream needs.
    ///
    /// - Parameter role: ``StreamRole/listener`` for the end that created the address.
    /// - Returns: outbound keys if this end writes, inbound keys if it reads.
    public func keys(as role: StreamRole) throws(StreamError) -> (outbound: OutboundKeys?, inbound: InboundKeys?) {
        switch kind {
        case .endToEnd(let secret):
            let mine = StreamKeySchedule.direction(secret: secret, from: role)
            let theirs = StreamKeySchedule.direction(secret: secret, from: role == .listener ? .dialer : .listener)
            return (
                OutboundKeys(frameKeyBase: mine.frameKeyBase, boxSeed: mine.boxSeed, signingSeed: nil),
                InboundKeys(frameKeyBase: theirs.frameKeyBase, channel: .writerSeed(theirs.boxSeed), verifyKey: nil)
            )
        case .multicastWriter(let secret):
            guard role == .listener else {
                throw StreamError(.invalidAddress, "a multicast writer address is for the writer; readers need its read-only address")
            }
            let mine = StreamKeySchedule.direction(secret: secret, from: .listener)
            return (OutboundKeys(frameKeyBase: mine.frameKeyBase, boxSeed: mine.boxSeed, signingSeed: mine.signingSeed), nil)
        case .multicastReader(let base, let verifyKey, let locator):
            guard role == .dialer else { throw StreamError(.readOnly, "a read-only address cannot write a stream") }
            return (nil, InboundKeys(frameKeyBase: base, channel: .readLocator(locator), verifyKey: verifyKey))
        }
    }
}
