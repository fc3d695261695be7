import CBOR

/// An unsolicited message to a connection that subscribed (`subscribe`), about one of its streams or the daemon.
public enum IPCEvent: Sendable, Hashable {
    /// Bytes from the peer were received up to stream offset `offset`.
    case dataAvailable(name: StreamName, offset: UInt64)
    /// The peer closed its direction; everything it wrote has been received.
    case peerClosed(name: StreamName)
    /// The stream failed permanently.
    case streamFailed(name: StreamName, error: IPCError)
    /// The peer acknowledged every written byte before `offset`.
    case writeAcknowledged(name: StreamName, offset: UInt64)
    /// The daemon's connection to kpclientd came up or went down.
    case kpclientd(connected: Bool)

    /// The event's wire name (its `event` field), such as `data_available`.
    public var kind: String {
        switch self {
        case .dataAvailable: "data_available"
        case .peerClosed: "peer_closed"
        case .streamFailed: "stream_failed"
        case .writeAcknowledged: "write_acknowledged"
        case .kpclientd: "kpclientd"
        }
    }

    /// The stream the event is about, if any.
    public var streamName: StreamName? {
        switch self {
        case .dataAvailable(let name, _), .peerClosed(let name), .streamFailed(let name, _), .writeAcknowledged(let name, _): name
        case .kpclientd: nil
        }
    }

    /// The event's fields after `event`, in wire order.
    var fields: [(String, CBORValue)] {
        switch self {
        case .dataAvailable(let name, let offset), .writeAcknowledged(let name, let offset):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.offset, .unsigned(offset))]
        case .peerClosed(let name):
            return [(IPCKey.name, .text(name.rawValue))]
        case .streamFailed(let name, let error):
            return [(IPCKey.name, .text(name.rawValue)), (IPCKey.error, error.cborValue)]
        case .kpclientd(let connected):
            return [(IPCKey.connected, .bool(connected))]
        }
    }

    init(kind: String, fields: IPCFields) throws(IPCError) {
        switch kind {
        case "data_available":
            self = .dataAvailable(name: try fields.name(), offset: try fields.uint(IPCKey.offset))
        case "peer_closed":
            self = .peerClosed(name: try fields.name())
        case "stream_failed":
            self = .streamFailed(name: try fields.name(), error: try IPCError(fields: fields.map(IPCKey.error)))
        case "write_acknowledged":
            self = .writeAcknowledged(name: try fields.name(), offset: try fields.uint(IPCKey.offset))
        case "kpclientd":
            self = .kpclientd(connected: try fields.bool(IPCKey.connected))
        default:
            throw IPCError(.unknownOperation, "unknown event \(kind.debugDescription)")
        }
    }
}
