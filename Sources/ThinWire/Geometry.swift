import CBOR

/// The geometry of a Sphinx packet, as sent in `connection_status_event.sphinx_geometry`.
///
/// The CBOR map uses the Go field names of `core/sphinx/geo.Geometry`: the twelve integer keys
/// are all required, `NIKEName` and `KEMName` are strings that may be absent. Unknown keys are
/// ignored, as Go's CBOR decoder does, so that a newer daemon's extra fields do not break the
/// handshake.
public struct SphinxGeometry: Sendable, Hashable {
    /// `PacketLength`: the total length of a Sphinx packet.
    public var packetLength: Int
    /// `NrHops`: the number of hops.
    public var nrHops: Int
    /// `HeaderLength`: the length of the Sphinx header.
    public var headerLength: Int
    /// `RoutingInfoLength`: the length of the header's routing information.
    public var routingInfoLength: Int
    /// `PerHopRoutingInfoLength`: the routing information of one hop.
    public var perHopRoutingInfoLength: Int
    /// `SURBLength`: the length of a single-use reply block.
    public var surbLength: Int
    /// `SphinxPlaintextHeaderLength`: the plaintext header inside the payload.
    public var sphinxPlaintextHeaderLength: Int
    /// `PayloadTagLength`: the payload authentication tag.
    public var payloadTagLength: Int
    /// `ForwardPayloadLength`: the full forward payload.
    public var forwardPayloadLength: Int
    /// `UserForwardPayloadLength`: the largest user payload of one packet.
    public var userForwardPayloadLength: Int
    /// `NextNodeHopLength`: the next-hop routing command.
    public var nextNodeHopLength: Int
    /// `SPRPKeyMaterialLength`: the key material of the payload SPRP.
    public var sprpKeyMaterialLength: Int
    /// `NIKEName`: the NIKE scheme, or `""` when a KEM is used.
    public var nikeName: String
    /// `KEMName`: the KEM scheme, or `""` when a NIKE is used.
    public var kemName: String

    /// Creates a geometry from all of its fields.
    public init(
        packetLength: Int, nrHops: Int, headerLength: Int, routingInfoLength: Int, perHopRoutingInfoLength: Int,
        surbLength: Int, sphinxPlaintextHeaderLength: Int, payloadTagLength: Int, forwardPayloadLength: Int,
        userForwardPayloadLength: Int, nextNodeHopLength: Int, sprpKeyMaterialLength: Int,
        nikeName: String, kemName: String
    ) {
        self.packetLength = packetLength
        self.nrHops = nrHops
        self.headerLength = headerLength
        self.routingInfoLength = routingInfoLength
        self.perHopRoutingInfoLength = perHopRoutingInfoLength
        self.surbLength = surbLength
        self.sphinxPlaintextHeaderLength = sphinxPlaintextHeaderLength
        self.payloadTagLength = payloadTagLength
        self.forwardPayloadLength = forwardPayloadLength
        self.userForwardPayloadLength = userForwardPayloadLength
        self.nextNodeHopLength = nextNodeHopLength
        self.sprpKeyMaterialLength = sprpKeyMaterialLength
        self.nikeName = nikeName
        self.kemName = kemName
    }

    /// The Go field names of the twelve integer fields, in declaration order.
    public static let integerKeys: [String] = [
        "PacketLength", "NrHops", "HeaderLength", "RoutingInfoLength", "PerHopRoutingInfoLength", "SURBLength",
        "SphinxPlaintextHeaderLength", "PayloadTagLength", "ForwardPayloadLength", "UserForwardPayloadLength",
        "NextNodeHopLength", "SPRPKeyMaterialLength",
    ]

    /// A self-consistent X25519 geometry with 5 hops for a given user forward payload length.
    ///
    /// The simulator uses it; the lengths follow the shape of Katzenpost's geometry (header =
    /// 2-byte AD + 32-byte group element + routing info + 32-byte MAC; SURB = header + 32-byte
    /// node ID + 64 bytes of SPRP keys; forward payload = 2-byte plaintext header + SURB + user
    /// payload; packet = header + 32-byte tag + forward payload). Only
    /// `UserForwardPayloadLength` matters to clients.
    public static func simulated(userForwardPayloadLength: Int, nrHops: Int = 5) -> SphinxGeometry {
        let nextNodeHop = 65
        let perHop = nextNodeHop + 17
        let routingInfo = perHop * nrHops
        let header = 2 + 32 + routingInfo + 32
        let sprpKeys = 64
        let surb = header + 32 + sprpKeys
        let plaintextHeader = 2
        let forward = plaintextHeader + surb + userForwardPayloadLength
        let tag = 32
        return SphinxGeometry(
            packetLength: header + tag + forward, nrHops: nrHops, headerLength: header, routingInfoLength: routingInfo,
            perHopRoutingInfoLength: perHop, surbLength: surb, sphinxPlaintextHeaderLength: plaintextHeader,
            payloadTagLength: tag, forwardPayloadLength: forward, userForwardPayloadLength: userForwardPayloadLength,
            nextNodeHopLength: nextNodeHop, sprpKeyMaterialLength: sprpKeys, nikeName: "x25519", kemName: ""
        )
    }

    private var integerValues: [Int] {
        [
            packetLength, nrHops, headerLength, routingInfoLength, perHopRoutingInfoLength, surbLength,
            sphinxPlaintextHeaderLength, payloadTagLength, forwardPayloadLength, userForwardPayloadLength,
            nextNodeHopLength, sprpKeyMaterialLength,
        ]
    }

    /// The complete CBOR map, with every integer key and both name keys.
    public var cborValue: CBORValue {
        var pairs: [(String, CBORValue)] = zip(Self.integerKeys, integerValues).map { ($0, .int(Int64($1))) }
        pairs.append(("NIKEName", .text(nikeName)))
        pairs.append(("KEMName", .text(kemName)))
        return .textMap(pairs)
    }

    /// Parses a geometry map, requiring all twelve integer keys and ignoring unknown keys.
    public init(cbor value: CBORValue) throws(ThinWireError) {
        let ints = try GeometryMap.parse(
            value, name: "sphinx_geometry", integerKeys: Self.integerKeys, requiredIntegers: Set(Self.integerKeys),
            textKeys: ["NIKEName", "KEMName"]
        )
        func i(_ k: String) -> Int { ints.integers[k] ?? 0 }
        self.init(
            packetLength: i("PacketLength"), nrHops: i("NrHops"), headerLength: i("HeaderLength"),
            routingInfoLength: i("RoutingInfoLength"), perHopRoutingInfoLength: i("PerHopRoutingInfoLength"),
            surbLength: i("SURBLength"), sphinxPlaintextHeaderLength: i("SphinxPlaintextHeaderLength"),
            payloadTagLength: i("PayloadTagLength"), forwardPayloadLength: i("ForwardPayloadLength"),
            userForwardPayloadLength: i("UserForwardPayloadLength"), nextNodeHopLength: i("NextNodeHopLength"),
            sprpKeyMaterialLength: i("SPRPKeyMaterialLength"),
            nikeName: ints.texts["NIKEName"] ?? "", kemName: ints.texts["KEMName"] ?? ""
        )
    }
}

/// The geometry of Pigeonhole envelopes, as sent in `connection_status_event.pigeonhole_geometry`.
///
/// The CBOR map uses the Go field names of `pigeonhole/geo.Geometry`. Only
/// `MaxPlaintextPayloadLength` is mandatory when parsing; unknown keys are ignored.
public struct PigeonholeGeometry: Sendable, Hashable {
    /// `MaxPlaintextPayloadLength` (M): the most plaintext one box holds.
    public var maxPlaintextPayloadLength: Int
    /// `CourierQueryReadLength`: the size of a CourierQuery carrying a read.
    public var courierQueryReadLength: Int
    /// `CourierQueryWriteLength`: the size of a CourierQuery carrying a write.
    public var courierQueryWriteLength: Int
    /// `CourierQueryReplyReadLength`: the size of a CourierQueryReply carrying a read reply.
    public var courierQueryReplyReadLength: Int
    /// `CourierQueryReplyWriteLength`: the size of a CourierQueryReply carrying a write reply.
    public var courierQueryReplyWriteLength: Int
    /// `NIKEName`: the replicas' MKEM NIKE, `CTIDH1024-X25519` on real networks.
    public var nikeName: String
    /// `SignatureSchemeName`: always `Ed25519`.
    public var signatureSchemeName: String

    /// The default M of the docker testnet (UFPL 2000): 1549.
    public static let defaultMaxPlaintextPayloadLength = 1549
    /// The fixed overhead subtracted from the user forward payload: 291 bytes.
    public static let courierOverhead = 291
    /// The public-key size P of the replica NIKE `CTIDH1024-X25519`, assumed 128 + 32 = 160.
    public static let replicaNIKEPublicKeyLength = 160
    /// The difference between a reply length and M: 169.
    public static let replyOverhead = 169
    /// The replica NIKE of real networks.
    public static let defaultNIKEName = "CTIDH1024-X25519"

    /// Creates a geometry from all of its fields.
    public init(
        maxPlaintextPayloadLength: Int, courierQueryReadLength: Int, courierQueryWriteLength: Int,
        courierQueryReplyReadLength: Int, courierQueryReplyWriteLength: Int,
        nikeName: String = PigeonholeGeometry.defaultNIKEName, signatureSchemeName: String = "Ed25519"
    ) {
        self.maxPlaintextPayloadLength = maxPlaintextPayloadLength
        self.courierQueryReadLength = courierQueryReadLength
        self.courierQueryWriteLength = courierQueryWriteLength
        self.courierQueryReplyReadLength = courierQueryReplyReadLength
        self.courierQueryReplyWriteLength = courierQueryReplyWriteLength
        self.nikeName = nikeName
        self.signatureSchemeName = signatureSchemeName
    }

    /// Derives the Pigeonhole geometry from a Sphinx geometry, as the daemon does (reference §2).
    ///
    /// M = UFPL − 291 − P; the query lengths are UFPL; the reply lengths are M + 169.
    public init(derivedFrom sphinx: SphinxGeometry) {
        let ufpl = sphinx.userForwardPayloadLength
        let m = ufpl - Self.courierOverhead - Self.replicaNIKEPublicKeyLength
        self.init(
            maxPlaintextPayloadLength: m, courierQueryReadLength: ufpl, courierQueryWriteLength: ufpl,
            courierQueryReplyReadLength: m + Self.replyOverhead, courierQueryReplyWriteLength: m + Self.replyOverhead
        )
    }

    /// The user forward payload length that yields a given M: M + 291 + 160.
    public static func userForwardPayloadLength(forMaxPlaintextPayloadLength m: Int) -> Int {
        m + courierOverhead + replicaNIKEPublicKeyLength
    }

    /// The Sphinx and Pigeonhole geometries of a simulated network whose boxes hold `m` bytes.
    public static func simulatedPair(maxPlaintextPayloadLength m: Int = defaultMaxPlaintextPayloadLength)
        -> (sphinx: SphinxGeometry, pigeonhole: PigeonholeGeometry)
    {
        let sphinx = SphinxGeometry.simulated(userForwardPayloadLength: userForwardPayloadLength(forMaxPlaintextPayloadLength: m))
        return (sphinx, PigeonholeGeometry(derivedFrom: sphinx))
    }

    /// The Go field names of the integer fields, in declaration order.
    public static let integerKeys: [String] = [
        "MaxPlaintextPayloadLength", "CourierQueryReadLength", "CourierQueryWriteLength",
        "CourierQueryReplyReadLength", "CourierQueryReplyWriteLength",
    ]

    /// The complete CBOR map, with every key.
    public var cborValue: CBORValue {
        .textMap([
            ("MaxPlaintextPayloadLength", .int(Int64(maxPlaintextPayloadLength))),
            ("CourierQueryReadLength", .int(Int64(courierQueryReadLength))),
            ("CourierQueryWriteLength", .int(Int64(courierQueryWriteLength))),
            ("CourierQueryReplyReadLength", .int(Int64(courierQueryReplyReadLength))),
            ("CourierQueryReplyWriteLength", .int(Int64(courierQueryReplyWriteLength))),
            ("NIKEName", .text(nikeName)),
            ("SignatureSchemeName", .text(signatureSchemeName)),
        ])
    }

    /// Parses a geometry map; only `MaxPlaintextPayloadLength` is required, unknown keys are ignored.
    public init(cbor value: CBORValue) throws(ThinWireError) {
        let parsed = try GeometryMap.parse(
            value, name: "pigeonhole_geometry", integerKeys: Self.integerKeys,
            requiredIntegers: ["MaxPlaintextPayloadLength"], textKeys: ["NIKEName", "SignatureSchemeName"]
        )
        func i(_ k: String) -> Int { parsed.integers[k] ?? 0 }
        guard i("MaxPlaintextPayloadLength") > 0 else {
            throw ThinWireError(.invalidGeometry, "pigeonhole_geometry.MaxPlaintextPayloadLength must be positive")
        }
        self.init(
            maxPlaintextPayloadLength: i("MaxPlaintextPayloadLength"),
            courierQueryReadLength: i("CourierQueryReadLength"), courierQueryWriteLength: i("CourierQueryWriteLength"),
            courierQueryReplyReadLength: i("CourierQueryReplyReadLength"),
            courierQueryReplyWriteLength: i("CourierQueryReplyWriteLength"),
            nikeName: parsed.texts["NIKEName"] ?? "", signatureSchemeName: parsed.texts["SignatureSchemeName"] ?? "Ed25519"
        )
    }
}

private enum GeometryMap {
    static func parse(
        _ value: CBORValue, name: String, integerKeys: [String], requiredIntegers: Set<String>, textKeys: Set<String>
    ) throws(ThinWireError) -> (integers: [String: Int], texts: [String: String]) {
        guard case .map(let entries) = value else { throw ThinWireError(.invalidGeometry, "\(name) is not a map") }
        let known = Set(integerKeys)
        var integers: [String: Int] = [:]
        var texts: [String: String] = [:]
        for entry in entries {
            guard case .text(let key) = entry.key else { throw ThinWireError(.invalidGeometry, "\(name) has a non-text key") }
            if known.contains(key) {
                guard let v = entry.value.int64, v >= 0, v <= Int64(Int32.max) else {
                    throw ThinWireError(.invalidGeometry, "\(name).\(key) must be a non-negative integer")
                }
                integers[key] = Int(v)
            } else if textKeys.contains(key) {
                guard let s = entry.value.text else { throw ThinWireError(.invalidGeometry, "\(name).\(key) must be text") }
                texts[key] = s
            }
            // Any other key is a field of a newer daemon: ignored, as Go's decoder does.
        }
        for key in integerKeys where requiredIntegers.contains(key) && integers[key] == nil {
            throw ThinWireError(.invalidGeometry, "\(name).\(key) is missing")
        }
        return (integers, texts)
    }
}
