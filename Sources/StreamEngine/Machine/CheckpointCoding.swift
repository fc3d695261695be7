import CBOR

// The CBOR forms of checkpoints and journal records. See `docs/PROTOCOL.md` §6.

extension StreamCheckpoint {
    /// Limits for decoding checkpoints: the structure is shallow and its item count is bounded
    /// by the configured windows, so anything bigger is corrupt.
    static let decodingLimits = CBORDecoder.Limits(maxDepth: 8, maxItems: 1_000_000)

    /// Serializes the checkpoint as one versioned CBOR value.
    ///
    /// - Important: the result holds key material: store it where only the owner can read it.
    public func encoded() -> [UInt8] { cborValue.encoded() }

    /// Decodes a checkpoint made by ``encoded()``.
    ///
    /// - Throws: ``StreamError/Code-swift.struct/invalidCheckpoint`` for anything malformed or
    ///   inconsistent, including an unknown format version.
    public init(encoded bytes: [UInt8]) throws(StreamError) {
        let value: CBORValue
        do {
            value = try CBORDecoder.decode(bytes, limits: Self.decodingLimits)
        } catch {
            throw StreamError(.invalidCheckpoint, "checkpoint is not valid CBOR: \(error.message)")
        }
        try self.init(cbor: value)
    }

    var cborValue: CBORValue {
        var fields: [(String, CBORValue)] = [
            ("version", .unsigned(Self.formatVersion)),
            ("mode", .unsigned(UInt64(mode.rawValue))),
            ("role", .unsigned(UInt64(role.rawValue))),
            ("box_size", .unsigned(UInt64(boxSize))),
            ("sequence", .unsigned(sequence)),
        ]
        if let outbound {
            var keys: [(String, CBORValue)] = [("frame_key_base", .bytes(outbound.frameKeyBase)), ("box_seed", .bytes(outbound.boxSeed))]
            if let signingSeed = outbound.signingSeed { keys.append(("signing_seed", .bytes(signingSeed))) }
            fields.append(("outbound", .textMap(keys)))
        }
        if let inbound {
            var keys: [(String, CBORValue)] = [("frame_key_base", .bytes(inbound.frameKeyBase))]
            switch inbound.channel {
            case .writerSeed(let seed): keys.append(("box_seed", .bytes(seed)))
            case .readLocator(let locator): keys.append(("read_locator", .bytes(locator)))
            }
            if let verifyKey = inbound.verifyKey { keys.append(("verify_key", .bytes(verifyKey))) }
            fields.append(("inbound", .textMap(keys)))
        }
        fields += [
            ("next_write_index", .unsigned(nextWriteIndex)),
            ("write_buffer", .bytes(writeBuffer.bytes)),
            ("framed_bytes", .unsigned(framedBytes)),
            ("close_requested", .bool(closeRequested)),
            ("fin_index", finIndex.map { .unsigned($0) } ?? .null),
            ("peer_cumulative_ack", .unsigned(peerCumulativeAck)),
            ("unacked", .array(unacked.keys.sorted().map { index in
                let frame = unacked[index]!
                return .array([.unsigned(index), .unsigned(frame.dataOffset), .unsigned(UInt64(frame.dataLength)),
                               .unsigned(UInt64(frame.kind.rawValue)), .bytes(frame.ciphertext)])
            })),
            ("next_read_index", .unsigned(nextReadIndex)),
            ("delivered_bytes", .unsigned(deliveredBytes)),
            ("read_buffer", .bytes(readBuffer.bytes)),
            ("peer_fin_offset", peerFinOffset.map { .unsigned($0) } ?? .null),
            ("pending", .array(pending.keys.sorted().map { index in
                let frame = pending[index]!
                return .array([.unsigned(index), .unsigned(frame.dataOffset), .bool(frame.fin), .bytes(frame.data)])
            })),
        ]
        return .textMap(fields)
    }

    init(cbor value: CBORValue) throws(StreamError) {
        var fields = try CheckpointFields(value, context: "checkpoint")
        let version = try fields.uint("version")
        guard version == Self.formatVersion else {
            throw StreamError(.invalidCheckpoint, "checkpoint format version \(version) is not supported (this build reads \(Self.formatVersion))")
        }
        guard let mode = StreamMode(rawValue: UInt8(truncatingIfNeeded: try fields.uint("mode"))),
              let role = StreamRole(rawValue: UInt8(truncatingIfNeeded: try fields.uint("role")))
        else { throw StreamError(.invalidCheckpoint, "checkpoint has an unknown mode or role") }
        let boxSize = try fields.uint("box_size")
        guard boxSize >= FrameSealer.minBoxSize, boxSize <= FrameSealer.maxBoxSize else {
            throw StreamError(.invalidCheckpoint, "checkpoint box size \(boxSize) is out of range")
        }
        var outbound: OutboundKeys?
        if let value = fields.optional("outbound") {
            var keys = try CheckpointFields(value, context: "outbound keys")
            outbound = OutboundKeys(
                frameKeyBase: try keys.key32("frame_key_base"), boxSeed: try keys.key32("box_seed"),
                signingSeed: try keys.optional("signing_seed").map { v throws(StreamError) in try CheckpointFields.key32(v, "signing_seed") })
            try keys.finish()
        }
        var inbound: InboundKeys?
        if let value = fields.optional("inbound") {
            var keys = try CheckpointFields(value, context: "inbound keys")
            let base = try keys.key32("frame_key_base")
            let channel: BoxChannelCredential
            if let seed = keys.optional("box_seed") {
                channel = .writerSeed(try CheckpointFields.key32(seed, "box_seed"))
            } else {
                let locator = try keys.bytes("read_locator")
                guard locator.count <= StreamAddress.maxLocatorLength else { throw StreamError(.invalidCheckpoint, "read locator is too long") }
                channel = .readLocator(locator)
            }
            let verifyKey = try keys.optional("verify_key").map { v throws(StreamError) in try CheckpointFields.key32(v, "verify_key") }
            inbound = InboundKeys(frameKeyBase: base, channel: channel, verifyKey: verifyKey)
            try keys.finish()
        }
        guard outbound != nil || inbound != nil else { throw StreamError(.invalidCheckpoint, "checkpoint has no keys") }
        self.init(mode: mode, role: role, boxSize: Int(boxSize), outbound: outbound, inbound: inbound)
        sequence = try fields.uint("sequence")
        nextWriteIndex = try fields.uint("next_write_index")
        writeBuffer = ByteQueue(try fields.bytes("write_buffer"))
        framedBytes = try fields.uint("framed_bytes")
        closeRequested = try fields.bool("close_requested")
        finIndex = try fields.optionalUInt("fin_index")
        peerCumulativeAck = try fields.uint("peer_cumulative_ack")
        for entry in try fields.array("unacked") {
            guard case .array(let parts) = entry, parts.count == 5,
                  let index = parts[0].uint64, let offset = parts[1].uint64, let length = parts[2].uint64,
                  let kindRaw = parts[3].uint64, let kind = FrameKind(rawValue: UInt8(truncatingIfNeeded: kindRaw)),
                  let ciphertext = parts[4].bytes, ciphertext.count == boxSize, index < nextWriteIndex,
                  length <= UInt64(boxSize), unacked[index] == nil
            else { throw StreamError(.invalidCheckpoint, "checkpoint has a malformed unacknowledged frame") }
            unacked[index] = RetainedFrame(dataOffset: offset, dataLength: Int(length), kind: kind, ciphertext: ciphertext)
        }
        nextReadIndex = try fields.uint("next_read_index")
        deliveredBytes = try fields.uint("delivered_bytes")
        readBuffer = ByteQueue(try fields.bytes("read_buffer"))
        peerFinOffset = try fields.optionalUInt("peer_fin_offset")
        for entry in try fields.array("pending") {
            guard case .array(let parts) = entry, parts.count == 4,
                  let index = parts[0].uint64, let offset = parts[1].uint64, let fin = parts[2].bool,
                  let data = parts[3].bytes, index > nextReadIndex, index < Self.maxCounter, pending[index] == nil,
                  offset <= Self.maxCounter - UInt64(data.count)
            else { throw StreamError(.invalidCheckpoint, "checkpoint has a malformed received frame") }
            pending[index] = ReceivedFrame(dataOffset: offset, data: data, fin: fin)
        }
        try fields.finish()
        // The machine adds to these counters: see `maxCounter`. (Unacknowledged frames are below
        // `nextWriteIndex`; received frames were checked above.)
        guard [sequence, nextWriteIndex, framedBytes, nextReadIndex, deliveredBytes].allSatisfy({ $0 <= Self.maxCounter }),
              UInt64(writeBuffer.count) <= Self.maxCounter - framedBytes
        else { throw StreamError(.invalidCheckpoint, "checkpoint has a counter out of range") }
        guard UInt64(readBuffer.count) <= deliveredBytes, finIndex.map({ $0 < nextWriteIndex }) ?? true,
              peerCumulativeAck <= nextWriteIndex, outbound != nil || (nextWriteIndex == 0 && writeBuffer.isEmpty),
              inbound != nil || (nextReadIndex == 0 && pending.isEmpty)
        else { throw StreamError(.invalidCheckpoint, "checkpoint is inconsistent") }
    }
}

extension CheckpointRecord {
    /// Serializes the record as one CBOR value: `[sequence, kind, fields...]`.
    public func encoded() -> [UInt8] {
        let body: [CBORValue]
        switch delta {
        case .appended(let bytes): body = [.unsigned(0), .bytes(bytes)]
        case .closeRequested: body = [.unsigned(1)]
        case .frameCreated(let index, let length, let kind, let ciphertext):
            body = [.unsigned(2), .unsigned(index), .unsigned(UInt64(length)), .unsigned(UInt64(kind.rawValue)), .bytes(ciphertext)]
        case .frameReceived(let frame):
            body = [.unsigned(3), .unsigned(frame.index), .unsigned(UInt64(frame.flags.rawValue)), .unsigned(frame.dataOffset),
                    .unsigned(frame.cumulativeAck),
                    .array(frame.sackRanges.map { .array([.unsigned($0.start), .unsigned(UInt64($0.count))]) }),
                    .bytes(frame.data)]
        case .verified(let index): body = [.unsigned(4), .unsigned(index)]
        case .consumed(let count): body = [.unsigned(5), .unsigned(UInt64(count))]
        }
        return CBORValue.array([.unsigned(sequence)] + body).encoded()
    }

    /// Decodes a record made by ``encoded()``.
    public init(encoded bytes: [UInt8]) throws(StreamError) {
        func bad() -> StreamError { StreamError(.invalidCheckpoint, "malformed journal record") }
        guard case .array(let parts)? = try? CBORDecoder.decode(bytes, limits: .init(maxDepth: 4, maxItems: 64)),
              parts.count >= 2, let sequence = parts[0].uint64, let kind = parts[1].uint64
        else { throw bad() }
        let fields = Array(parts.dropFirst(2))
        let delta: CheckpointDelta
        switch (kind, fields.count) {
        case (0, 1):
            guard let bytes = fields[0].bytes else { throw bad() }
            delta = .appended(bytes)
        case (1, 0):
            delta = .closeRequested
        case (2, 4):
            guard let index = fields[0].uint64, let length = fields[1].uint64, length <= UInt64(FrameSealer.maxBoxSize),
                  let kindRaw = fields[2].uint64, let frameKind = FrameKind(rawValue: UInt8(truncatingIfNeeded: kindRaw)),
                  let ciphertext = fields[3].bytes
            else { throw bad() }
            delta = .frameCreated(index: index, dataLength: Int(length), kind: frameKind, ciphertext: ciphertext)
        case (3, 6):
            guard let index = fields[0].uint64, let flags = fields[1].uint64, flags <= 0xff, let offset = fields[2].uint64,
                  let ack = fields[3].uint64, let rangeValues = fields[4].array, rangeValues.count <= Frame.maxSackRanges,
                  let data = fields[5].bytes
            else { throw bad() }
            var ranges: [IndexRange] = []
            for value in rangeValues {
                guard let pair = value.array, pair.count == 2, let start = pair[0].uint64, let count = pair[1].uint64,
                      count > 0, count <= UInt64(UInt32.max)
                else { throw bad() }
                ranges.append(IndexRange(start: start, count: UInt32(count)))
            }
            delta = .frameReceived(Frame(index: index, flags: Frame.Flags(rawValue: UInt8(flags)), dataOffset: offset,
                                         cumulativeAck: ack, sackRanges: ranges, data: data))
        case (4, 1):
            guard let index = fields[0].uint64 else { throw bad() }
            delta = .verified(index: index)
        case (5, 1):
            guard let count = fields[0].uint64, count <= UInt64(Int.max) else { throw bad() }
            delta = .consumed(Int(count))
        default:
            throw bad()
        }
        self.init(sequence: sequence, delta: delta)
    }
}

/// Strict access to the text-keyed map of a checkpoint: every key must be known and used once.
private struct CheckpointFields {
    private var entries: [String: CBORValue] = [:]
    private let context: String

    init(_ value: CBORValue, context: String) throws(StreamError) {
        guard let map = value.mapEntries else { throw StreamError(.invalidCheckpoint, "\(context) is not a map") }
        self.context = context
        for entry in map {
            guard let key = entry.key.text else { throw StreamError(.invalidCheckpoint, "\(context) has a non-text key") }
            entries[key] = entry.value
        }
    }

    private func missing(_ key: String) -> StreamError { StreamError(.invalidCheckpoint, "\(context) lacks a valid \"\(key)\"") }

    mutating func optional(_ key: String) -> CBORValue? {
        guard let value = entries.removeValue(forKey: key), !value.isNull else { return nil }
        return value
    }

    mutating func uint(_ key: String) throws(StreamError) -> UInt64 {
        guard let value = optional(key)?.uint64 else { throw missing(key) }
        return value
    }

    mutating func optionalUInt(_ key: String) throws(StreamError) -> UInt64? {
        guard let value = optional(key) else { return nil }
        guard let number = value.uint64 else { throw missing(key) }
        return number
    }

    mutating func bool(_ key: String) throws(StreamError) -> Bool {
        guard let value = optional(key)?.bool else { throw missing(key) }
        return value
    }

    mutating func bytes(_ key: String) throws(StreamError) -> [UInt8] {
        guard let value = optional(key)?.bytes else { throw missing(key) }
        return value
    }

    mutating func array(_ key: String) throws(StreamError) -> [CBORValue] {
        guard let value = optional(key)?.array else { throw missing(key) }
        return value
    }

    mutating func key32(_ key: String) throws(StreamError) -> [UInt8] {
        guard let value = optional(key) else { throw missing(key) }
        return try Self.key32(value, key)
    }

    static func key32(_ value: CBORValue, _ key: String) throws(StreamError) -> [UInt8] {
        guard let bytes = value.bytes, bytes.count == 32 else { throw StreamError(.invalidCheckpoint, "\"\(key)\" must be 32 bytes") }
        return bytes
    }

    func finish() throws(StreamError) {
        if let extra = entries.keys.sorted().first {
            throw StreamError(.invalidCheckpoint, "\(context) has an unknown field \"\(extra)\"")
        }
    }
}
