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

    @Test func frameKeysAndNonces() {
        let base = StreamKeySchedule.direction(secret: vectorSecret, from: .listener).frameKeyBase
        let expected: [(UInt64, String, String)] = [
            (0, "7b7c069346b6a86656c92f4a24d4621f03519deb2f492af308abb4db8c14e25a", "a0ab57bf23e112fd33ed020c37cddf8d1e4dffa956f72b2c"),
            (1, "19f746d1d6c5b8ca341eb117fc5d58e8dbaf5897b8e2bcc3d57f1ed17fbe692b", "74c973e2d9b7af1f46f128044b064b08e1b1a933904c2c30"),
            (1 << 40, "d28211938646d40d7f2ebecee41e6dc033109257d33e9373ac29f62b43229be9", "5e1ebbd3b34a14dcf6e215d41faddf5ea97042543abe280e"),
        ]
        for (index, key, nonce) in expected {
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
        #expect(hex(SHA256.hash(box)) == "b571655cf720632bd20ec043a611c705ead7be3e046e67365b8fd328ff268314")
        let reader = try StreamAddress(.endToEnd(secret: vectorSecret)).keys(as: .dialer)
        #expect(try FrameSealer(inbound: reader.inbound!, boxSize: 256).open(box, index: 5) == frame)
    }
}
