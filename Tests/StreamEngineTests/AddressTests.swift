@testable import StreamEngine
import StreamEngineTesting
import Testing

@Suite struct AddressTests {
    @Test func roundTripsEveryKind() throws {
        let kinds: [StreamAddress] = [
            .generate(mode: .endToEnd), .generate(mode: .multicast),
            StreamAddress(.multicastReader(frameKeyBase: Array(repeating: 7, count: 32), verifyKey: Array(repeating: 9, count: 32),
                                           readLocator: Array(repeating: 1, count: 136))),
        ]
        for address in kinds {
            #expect(try StreamAddress(parsing: address.encoded) == address)
            #expect(try StreamAddress(parsing: "  \(address.encoded.uppercased())\n") == address)
        }
    }

    @Test func everySingleCharacterTypoIsCaught() throws {
        let text = StreamAddress.generate().encoded
        let characters = Array(text)
        for position in 4..<characters.count {
            for replacement in ["a", "q", "7", "2"] where String(characters[position]) != replacement {
                var typo = characters
                typo[position] = Character(replacement)
                #expect(throws: StreamError.self) { try StreamAddress(parsing: String(typo)) }
            }
        }
    }

    @Test func clearErrors() {
        func message(_ text: String) -> String? {
            do {
                _ = try StreamAddress(parsing: text)
                return nil
            } catch {
                #expect(error.code == .invalidAddress)
                return error.message
            }
        }
        #expect(message("hello")?.contains("starts with") == true)
        #expect(message("kps1abc!def")?.contains("position 8") == true)
        #expect(message("kps1aaaa")?.contains("short") == true)
        var valid = Array(StreamAddress.generate().encoded)
        valid[20] = valid[20] == "a" ? "b" : "a"
        #expect(message(String(valid))?.contains("checksum") == true)
        // An unknown kind with a valid checksum.
        var payload: [UInt8] = [9] + Array(repeating: 0, count: 32)
        payload += StreamAddress.checksum(payload)
        #expect(message("kps1" + Base32.encode(payload))?.contains("unknown address kind 9") == true)
    }

    @Test func descriptionNeverShowsTheSecret() {
        let address = StreamAddress.generate()
        #expect(!"\(address)".contains(String(address.encoded.dropFirst(4).prefix(12))))
        #expect("\(address)".contains("redacted"))
    }

    @Test func readOnlyAddressNeedsMulticast() async throws {
        let store = InMemoryBoxStore()
        await #expect(throws: StreamError.self) { try await StreamAddress.generate(mode: .endToEnd).readOnly(store: store) }
        let writer = StreamAddress.generate(mode: .multicast)
        let reader = try await writer.readOnly(store: store)
        guard case .multicastReader(_, _, let locator) = reader.kind else {
            Issue.record("not a reader address")
            return
        }
        let writerSeed = try #require(try writer.keys(as: .listener).outbound).boxSeed
        #expect(locator == (try await store.readLocator(forWriterSeed: writerSeed)))
        #expect(throws: StreamError.self) { try reader.keys(as: .listener) }
        #expect(throws: StreamError.self) { try writer.keys(as: .dialer) }
    }
}

@Suite struct RedactionTests {
    @Test func keyHoldersNeverPrintKeyMaterial() throws {
        let secret = vectorSecret
        let address = StreamAddress(.endToEnd(secret: secret))
        var machine = try StreamMachine(address: address, role: .listener, boxSize: 512, now: .zero, randomSeed: 1)
        try machine.appWrite([1, 2, 3], now: .zero)
        let keys = try address.keys(as: .listener)
        let base = keys.outbound!.frameKeyBase
        // The secretbox key the machine's sealer derives from the base and keeps.
        let frameKey = StreamKeySchedule.frameKeyAndNonce(frameKeyBase: base, index: 0).key
        var dumped = ""
        dump(machine, to: &dumped)
        for text in ["\(machine)", String(reflecting: machine), "\(machine.checkpoint)", String(reflecting: machine.checkpoint),
                     "\(keys.outbound!)", String(reflecting: keys.inbound!), "\(address)", String(reflecting: address), "\(address.kind)", dumped] {
            for key in [base, frameKey] {
                // Decimal byte lists are what Swift prints for [UInt8]; look for a run of key bytes.
                #expect(!text.contains(key.prefix(4).map(String.init).joined(separator: ", ")), "\(text.prefix(200))")
                #expect(!text.contains(hex(Array(key.prefix(4)))))
            }
            #expect(!text.contains(address.encoded.dropFirst(4).prefix(16)))
        }
    }
}
