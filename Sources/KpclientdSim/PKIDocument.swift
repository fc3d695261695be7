import CBOR
import ThinWire

/// The simulated PKI: one gateway, three mixes, one service node advertising "echo" and
/// "courier", two storage replicas, and one directory authority.
struct SimPKI: Sendable {
    /// The Katzenpost epoch period (20 minutes).
    static let epochPeriodSeconds: UInt64 = 20 * 60

    let serviceIdentityKey: [UInt8]
    let gatewayIdentityKey: [UInt8]
    let mixIdentityKeys: [[UInt8]]
    let replicaIdentityKeys: [[UInt8]]
    let authorityIdentityKey: [UInt8]
    let sphinxGeometryHash: [UInt8]
    let genesisEpoch: UInt64

    /// BLAKE2b-256 of the service node's identity key: the `destination_id_hash` of echo and courier.
    var serviceIdentityHash: [UInt8] { SimCrypto.blake2b(serviceIdentityKey) }

    static let echoEndpoint = "echo"
    static let courierEndpoint = "courier"

    init(random: inout SimRandom, sphinx: SphinxGeometry, genesisEpoch: UInt64) {
        serviceIdentityKey = random.bytes(32)
        gatewayIdentityKey = random.bytes(32)
        mixIdentityKeys = (0..<3).map { _ in random.bytes(32) }
        replicaIdentityKeys = (0..<2).map { _ in random.bytes(32) }
        authorityIdentityKey = random.bytes(32)
        sphinxGeometryHash = SimCrypto.blake2b(WireCBOR.encode(sphinx.cborValue))
        self.genesisEpoch = genesisEpoch
    }

    static func epoch(unixSeconds: UInt64) -> UInt64 { unixSeconds / epochPeriodSeconds }

    private func descriptor(
        name: String, identityKey: [UInt8], epoch: UInt64, port: Int, gateway: Bool, service: Bool,
        kaetzchen: CBORValue
    ) -> [UInt8] {
        WireCBOR.encode(.textMap([
            ("Name", .text(name)),
            ("Epoch", .unsigned(epoch)),
            ("IdentityKey", .bytes(identityKey)),
            ("LinkKey", .bytes(SimCrypto.blake2b(identityKey + Array("link".utf8)))),
            ("MixKeys", .map([CBORMapEntry(.unsigned(epoch), .bytes(SimCrypto.blake2b(identityKey + Bytes.le64(epoch))))])),
            ("Addresses", .textMap([("tcp", .array([.text("tcp://127.0.0.1:\(port)")]))])),
            ("Kaetzchen", kaetzchen),
            ("KaetzchenAdvertizedData", .null),
            ("IsGatewayNode", .bool(gateway)),
            ("IsServiceNode", .bool(service)),
            ("LoadWeight", .unsigned(0)),
            ("AuthenticationType", .text("")),
            ("Version", .text("v0")),
        ]))
    }

    /// The signature-stripped PKI document of `epoch`, CBOR-encoded (`new_pki_document_event.payload`),
    /// listing the couriers present and publishing `lambdaP` (sends per millisecond).
    func document(epoch: UInt64, couriers: [SimCourier], lambdaP: Double) -> [UInt8] {
        WireCBOR.encode(documentValue(epoch: epoch, couriers: couriers, lambdaP: lambdaP))
    }

    func documentValue(epoch: UInt64, couriers: [SimCourier], lambdaP: Double) -> CBORValue {
        let noServices = CBORValue.null
        let courierService = CBORValue.textMap([("endpoint", .text(Self.courierEndpoint))])
        let mixes: [CBORValue] = mixIdentityKeys.enumerated().map { i, key in
            .bytes(descriptor(name: "mix\(i + 1)", identityKey: key, epoch: epoch, port: 30_010 + i, gateway: false, service: false, kaetzchen: noServices))
        }
        let gateway = CBORValue.bytes(descriptor(name: "gateway1", identityKey: gatewayIdentityKey, epoch: epoch, port: 30_001, gateway: true, service: false, kaetzchen: noServices))
        // The first service node runs echo, and the first courier until that courier leaves;
        // every other courier is a service node of its own.
        var firstServices: [(String, CBORValue)] = [("echo", .textMap([("endpoint", .text(Self.echoEndpoint))]))]
        if couriers.contains(where: { $0.identityKey == serviceIdentityKey }) { firstServices.append(("courier", courierService)) }
        var services: [CBORValue] = [.bytes(descriptor(
            name: "servicenode1", identityKey: serviceIdentityKey, epoch: epoch, port: 30_002, gateway: false, service: true,
            kaetzchen: .textMap(firstServices)
        ))]
        for courier in couriers where courier.identityKey != serviceIdentityKey {
            services.append(.bytes(descriptor(
                name: "servicenode\(courier.serial + 1)", identityKey: courier.identityKey, epoch: epoch,
                port: 30_100 + courier.serial % 800, gateway: false, service: true,
                kaetzchen: .textMap([("courier", courierService)])
            )))
        }
        let replicas: [CBORValue] = replicaIdentityKeys.enumerated().map { i, key in
            .bytes(WireCBOR.encode(.textMap([
                ("Name", .text("replica\(i + 1)")),
                ("Epoch", .unsigned(epoch)),
                ("IdentityKey", .bytes(key)),
                ("LinkKey", .bytes(SimCrypto.blake2b(key + Array("link".utf8)))),
                ("EnvelopeKeys", .map([CBORMapEntry(.unsigned(epoch / 504), .bytes(SimCrypto.blake2b(key + Array("envelope".utf8))))])),
                ("Addresses", .textMap([("tcp", .array([.text("tcp://127.0.0.1:\(30_020 + i)")]))])),
                ("ReplicaID", .unsigned(UInt64(i))),
            ])))
        }
        let commitKey = SimCrypto.blake2b(authorityIdentityKey)
        let srv = SimCrypto.blake2b(Array("shared random".utf8) + Bytes.le64(epoch))
        return .textMap([
            ("Epoch", .unsigned(epoch)),
            ("GenesisEpoch", .unsigned(genesisEpoch)),
            ("Mu", .float(0.005)),
            ("LambdaP", .float(lambdaP)),
            ("LambdaL", .float(0.0005)),
            ("LambdaM", .float(0.0005)),
            ("LambdaG", .float(0.0)),
            ("LambdaR", .float(0.0005)),
            ("Topology", .array(mixes.map { .array([$0]) })),
            ("GatewayNodes", .array([gateway])),
            ("ServiceNodes", .array(services)),
            ("StorageReplicas", .array(replicas)),
            ("SharedRandomCommit", .map([CBORMapEntry(.bytes(commitKey), .bytes(SimCrypto.blake2b(srv + Array("commit".utf8))))])),
            ("SharedRandomReveal", .map([CBORMapEntry(.bytes(commitKey), .bytes(SimCrypto.blake2b(srv + Array("reveal".utf8))))])),
            ("SharedRandomValue", .bytes(srv)),
            ("PriorSharedRandom", .array([.bytes(SimCrypto.blake2b(srv))])),
            ("SphinxGeometryHash", .bytes(sphinxGeometryHash)),
            ("PKISignatureScheme", .text("Ed25519")),
            ("Version", .text("v1")),
        ])
    }

    /// The `get_pki_document_reply.payload`: a certificate-shaped map wrapping the document with
    /// an (empty-signature) signature map, standing in for the real `cert.Certificate`.
    func signedDocument(epoch: UInt64, couriers: [SimCourier], lambdaP: Double) -> [UInt8] {
        WireCBOR.encode(.textMap([
            ("Version", .unsigned(0)),
            ("Type", .text("kpclientd-sim-document")),
            ("Expiration", .unsigned(epoch + 3)),
            ("KeyType", .text("Ed25519")),
            ("Certified", .bytes(document(epoch: epoch, couriers: couriers, lambdaP: lambdaP))),
            ("Signatures", .map([CBORMapEntry(.bytes(SimCrypto.blake2b(authorityIdentityKey)), .bytes([UInt8](repeating: 0, count: 64)))])),
        ]))
    }

    /// The `get_directory_authorities_reply.authorities` array.
    var authorities: CBORValue {
        .array([.textMap([
            ("identifier", .text("auth1")),
            ("pki_signature_scheme", .text("Ed25519")),
            ("wire_kem_scheme", .text("xwing")),
            ("addresses", .array([.text("tcp://127.0.0.1:30000")])),
            ("identity_public_key_pem", .text("-----BEGIN ED25519 PUBLIC KEY-----\n\(hexString(authorityIdentityKey))\n-----END ED25519 PUBLIC KEY-----\n")),
            ("link_public_key_pem", .text("-----BEGIN XWING PUBLIC KEY-----\n\(hexString(SimCrypto.blake2b(authorityIdentityKey + Array("link".utf8))))\n-----END XWING PUBLIC KEY-----\n")),
            ("identity_key_hash", .bytes(SimCrypto.blake2b(authorityIdentityKey))),
        ])])
    }

    private func hexString(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
    }
}

/// One courier of the simulated network. ARQs pick one at random and keep it for their whole
/// life (`arqDoResend`: "Reuse the same courier for retries").
struct SimCourier: Sendable {
    /// A number unique for the simulator's life (also names its service node).
    let serial: Int
    /// The service node's identity key.
    let identityKey: [UInt8]
    /// BLAKE2b-256 of the identity key: the `courier_identity_hash` in replies.
    var identityHash: [UInt8] { SimCrypto.blake2b(identityKey) }
}
