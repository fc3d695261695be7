@testable import StreamEngine
import StreamCrypto
import Testing

/// The test vectors published in docs/PROTOCOL.md; another implementation must reproduce them.
@Suite struct ProtocolVectorTests {
    @Test func addressEncoding() throws {
        let address = StreamAddress(.endToEnd(secret: vectorSecret))
        #expect(address.encoded == "kps1aeaacaqdaqcqmbyibefawdanbyhraeiscmkbkfqxdamrugy4dupb6t7taq5q")
        #expect(StreamAddress(.multicastWriter(secret: vectorSecret)).encoded == "kps1aiaacaqdaqcqmbyibefawdanbyhraeiscmkbkfqxdamrugy4dupb67w3zlma")
        #expect(try StreamAddress(parsing: address.encoded) == address)
    }

    @Test func keySchedule() {
        let listener = StreamKeySchedule.direction(secret: vectorSecret, from: .listener)
        #expect(hex(listener.frameKeyBase) == "47cbd8b0428ffd5fe6de6b965aa0e48aba171d0f54d4b2bc381dd50bbe2cde0e")
        #expect(hex(listener.boxSeed) == "7771f7144dd5253cec617ce1632c6d63b36eea1d530e4c02555eb08c76c634c4")
        #expect(hex(listener.signingSeed) == "11aaa4a668293bcb38c9ddc56f468c5bdd5bcbffdbdba927498287bf346c9c63")
        let dialer = StreamKeySchedule.direction(secret: vectorSecret, from: .dialer)
        #expect(hex(dialer.frameKeyBase) == "52a22b24fe70267e42464c49f9eee3976ef8ea3e2801144b9e7503222604009e")
        #expect(hex(dialer.boxSeed) == "b1bf45effd977481f74cc9dbcf6ec8910ab7906eac885b838d47c5acf3dc1f0f")
        #expect(hex(dialer.signingSeed) == "03c904036054ff7f7b08755ac94a3c746c7698887122ab88b877026596d92a30")
    }

    /// One `crypto_kdf_derive_from_key` (BLAKE2b) per direction for the key, the index in each
    /// frame's nonce; the key was computed independently with Python's `hashlib.blake2b` (see
    /// docs/PROTOCOL.md §7).
    @Test func frameKeysAndNonces() {
        let base = StreamKeySchedule.direction(secret: vectorSecret, from: .listener).frameKeyBase
        let key = "f8f8331448be22df1af257355ac8ae1a6868523eb4016e2769f6846ed77a99dc"
        let expected: [(UInt64, String)] = [
            (0, "7364316e6f6e636500000000000000000000000000000000"),
            (1, "7364316e6f6e636500000000000000010000000000000000"),
            (1 << 40, "7364316e6f6e636500000100000000000000000000000000"),
        ]
        for (index, nonce) in expected {
            let derived = StreamKeySchedule.frameKeyAndNonce(frameKeyBase: base, index: index)
            #expect(hex(derived.key) == key)
            #expect(hex(derived.nonce) == nonce)
        }
    }

    /// Frame 5, FIN, offset 1000, ack 3, SACK [5, 7), data "hello", padded to 64 bytes; sealed
    /// into a 256-byte box with the listener's keys.
    @Test func frameLayoutAndBox() throws {
        let frame = Frame(index: 5, flags: [.fin], dataOffset: 1000, cumulativeAck: 3,
                          sackRanges: [IndexRange(start: 5, count: 2)], data: Array("hello".utf8))
        let plaintext = frame.encode(plaintextSize: 64)
        #expect(hex(plaintext) == "0101000000000000000500000000000003e8000000000000000301000000000000000500000002000568656c6c6f000000000000000000000000000000000000")
        #expect(try Frame.decode(plaintext) == frame)
        let keys = try StreamAddress(.endToEnd(secret: vectorSecret)).keys(as: .listener)
        let box = FrameSealer(outbound: keys.outbound!, boxSize: 256).seal(frame)
        #expect(box.count == 256)
        #expect(hex(SHA256.hash(box)) == "eecc51e838cbd7c2a489c422fcfbea01516d9a1ad3fa07ef7fb870c89fb74bf2")
        let reader = try StreamAddress(.endToEnd(secret: vectorSecret)).keys(as: .dialer)
        #expect(try FrameSealer(inbound: reader.inbound!, boxSize: 256).open(box, index: 5) == frame)
    }
}
