import CBOR

/// The kind of a successful reply: the `reply` field's wire value.
public enum IPCReplyKind: String, Sendable, Hashable, CaseIterable {
    /// Answers `hello`.
    case hello
    /// Answers `create` and `join`.
    case created
    /// Answers `close`, `remove`, `sync` and `subscribe`.
    case ok
    /// Answers `list`.
    case list
    /// Answers `status`.
    case status
    /// Answers `address`.
    case address
    /// Answers `write`.
    case written
    /// Answers `read`.
    case data
    /// Answers `consume`.
    case consumed
    /// Answers `daemon_status`.
    case daemonStatus = "daemon_status"
}

/// A successful reply from the daemon.
public enum IPCReply: Sendable, Hashable {
    /// The negotiated version, the daemon's software version, its per-run 16-byte instance id and its optional features.
    case hello(version: UInt64, daemon: String, instance: [UInt8], features: [String])
    /// The new stream and its address: the full address for `create`, the given one for `join`.
    case created(IPCStreamInfo, address: String)
    /// Done, nothing to return.
    case ok
    /// Every stream.
    case list([IPCStreamInfo])
    /// One stream.
    case status(IPCStreamInfo)
    /// A stream address (a secret: apps hand it only to the intended peer).
    case address(String)
    /// `accepted` bytes of the write were newly accepted; `offset` is the stream offset after
    /// them (everything before it is durable).
    case written(accepted: UInt64, offset: UInt64)
    /// Received bytes starting at `offset`; `end` means the peer closed and nothing follows them.
    case data(offset: UInt64, bytes: [UInt8], end: Bool)
    /// Every received byte before `offset` is consumed, durably.
    case consumed(offset: UInt64)
    /// The daemon's description.
    case daemonStatus(IPCDaemonStatus)

    /// The reply's kind (its `reply` field).
    public var kind: IPCReplyKind {
        switch self {
        case .hello: .hello
        case .created: .created
        case .ok: .ok
        case .list: .list
        case .status: .status
        case .address: .address
        case .written: .written
        case .data: .data
        case .consumed: .consumed
        case .daemonStatus: .daemonStatus
        }
    }

    /// The reply's fields after `id` and `reply`, in wire order.
    var fields: [(String, CBORValue)] {
        switch self {
        case .hello(let version, let daemon, let instance, let features):
            return [
                (IPCKey.version, .unsigned(version)), (IPCKey.daemon, .text(truncated(daemon))), (IPCKey.instance, .bytes(instance)),
                (IPCKey.features, .array(features.map { .text($0) })),
            ]
        case .created(let info, let address):
            return [(IPCKey.stream, info.cborValue), (IPCKey.address, .text(address))]
        case .ok:
            return []
        case .list(let infos):
            return [(IPCKey.streams, .array(infos.map(\.cborValue)))]
        case .status(let info):
            return [(IPCKey.stream, info.cborValue)]
        case .address(let address):
            return [(IPCKey.address, .text(address))]
        case .written(let accepted, let offset):
            return [(IPCKey.accepted, .unsigned(accepted)), (IPCKey.offset, .unsigned(offset))]
        case .data(let offset, let bytes, let end):
            return [(IPCKey.offset, .unsigned(offset)), (IPCKey.data, .bytes(bytes)), (IPCKey.end, .bool(end))]
        case .consumed(let offset):
            return [(IPCKey.offset, .unsigned(offset))]
        case .daemonStatus(let status):
            return [(IPCKey.status, status.cborValue)]
        }
    }

    init(kind: IPCReplyKind, fields: IPCFields) throws(IPCError) {
        switch kind {
        case .hello:
            var features: [String] = []
            for element in try fields.array(IPCKey.features, max: IPCLimits.maxFeatures) {
                guard let feature = element.text, feature.utf8.count <= IPCLimits.maxFeatureLength else {
                    throw fields.invalid(IPCKey.features, "must hold text strings of at most \(IPCLimits.maxFeatureLength) bytes")
                }
                features.append(feature)
            }
            self = .hello(
                version: try fields.uint(IPCKey.version), daemon: try fields.text(IPCKey.daemon, max: IPCLimits.maxTextLength),
                instance: try fields.bytes(IPCKey.instance, exactly: IPCLimits.instanceLength), features: features)
        case .created:
            self = .created(
                try IPCStreamInfo(fields: fields.map(IPCKey.stream)),
                address: try fields.text(IPCKey.address, max: IPCLimits.maxAddressLength))
        case .ok:
            self = .ok
        case .list:
            var infos: [IPCStreamInfo] = []
            for (index, element) in try fields.array(IPCKey.streams, max: IPCLimits.maxFrameSize).enumerated() {
                let entry = try IPCFields(element, what: "stream", requestID: fields.requestID, path: "\(IPCKey.streams)[\(index)].")
                infos.append(try IPCStreamInfo(fields: entry))
            }
            self = .list(infos)
        case .status:
            self = .status(try IPCStreamInfo(fields: fields.map(IPCKey.stream)))
        case .address:
            self = .address(try fields.text(IPCKey.address, max: IPCLimits.maxAddressLength))
        case .written:
            self = .written(accepted: try fields.uint(IPCKey.accepted), offset: try fields.uint(IPCKey.offset))
        case .data:
            self = .data(
                offset: try fields.uint(IPCKey.offset), bytes: try fields.bytes(IPCKey.data, max: IPCLimits.maxChunk),
                end: try fields.bool(IPCKey.end))
        case .consumed:
            self = .consumed(offset: try fields.uint(IPCKey.offset))
        case .daemonStatus:
            self = .daemonStatus(try IPCDaemonStatus(fields: fields.map(IPCKey.status)))
        }
    }
}
