import CBOR
import PigeonholeTransport
import StreamEngine

/// PigeonholeTransport's BACAP index caches of a stream's two channels, stored next to its
/// checkpoint so that a restored stream does not re-derive box indices from the first one.
///
/// Stored as a CBOR map `{"out": {box: index}, "in": {box: index}}`. A snapshot that does not
/// decode is ignored (the cache is an optimisation; the channel derives indices without it).
struct IndexSnapshots: Sendable, Hashable {
    var outbound: BoxIndexSnapshot?
    var inbound: BoxIndexSnapshot?

    subscript(channel: StreamChannel) -> BoxIndexSnapshot? {
        get { channel == .outbound ? outbound : inbound }
        set {
            if channel == .outbound { outbound = newValue } else { inbound = newValue }
        }
    }

    var isEmpty: Bool { outbound == nil && inbound == nil }

    func encoded() -> [UInt8] {
        func map(_ snapshot: BoxIndexSnapshot?) -> CBORValue {
            let entries = (snapshot?.anchors ?? [:]).sorted { $0.key < $1.key }
            return .map(entries.map { CBORMapEntry(.unsigned($0.key), .bytes($0.value)) })
        }
        return CBORValue.textMap([("out", map(outbound)), ("in", map(inbound))]).encoded()
    }

    init(outbound: BoxIndexSnapshot? = nil, inbound: BoxIndexSnapshot? = nil) {
        self.outbound = outbound
        self.inbound = inbound
    }

    /// Decodes a stored snapshot; `nil` if it is damaged.
    init?(encoded bytes: [UInt8]) {
        guard let value = try? CBORDecoder.decode(bytes, limits: .init(maxDepth: 4, maxItems: 8192)) else { return nil }
        func snapshot(_ key: String) -> BoxIndexSnapshot?? {
            guard let entries = value[key]?.mapEntries else { return .some(nil) }
            var anchors: [UInt64: [UInt8]] = [:]
            for entry in entries {
                guard let box = entry.key.uint64, let index = entry.value.bytes else { return nil }
                anchors[box] = index
            }
            return .some(anchors.isEmpty ? nil : BoxIndexSnapshot(anchors: anchors))
        }
        guard let outbound = snapshot("out"), let inbound = snapshot("in") else { return nil }
        self.outbound = outbound
        self.inbound = inbound
    }
}
