import IPC
import Testing

@Suite struct NameAndVersionTests {
    @Test func validNames() throws {
        for text in ["a", "Z", "0", "chat", "news.feed_1-2", "A.b_C-d", String(repeating: "x", count: 64), "9-.", "a--"] {
            let name = try StreamName(text)
            #expect(name.rawValue == text)
            #expect(name.description == text)
        }
    }

    @Test func invalidNamesSayWhichRule() {
        let cases: [(String, String)] = [
            ("", "empty"),
            (String(repeating: "x", count: 65), "at most 64"),
            ("-a", "start with a letter or digit"),
            ("_a", "start with a letter or digit"),
            (".hidden", "start with a letter or digit"),
            ("a b", "character 2"),
            ("ab/", "character 3"),
            ("é", "character 1"),
            ("a\u{0}", "character 2"),
        ]
        for (text, rule) in cases {
            do {
                _ = try StreamName(text)
                Issue.record("\(text.debugDescription) accepted")
            } catch {
                #expect(error.code == .invalidName)
                #expect(error.message.contains(rule), "\(error.message) should mention \(rule)")
            }
        }
    }

    @Test func negotiation() {
        #expect(IPCVersion.current == 1)
        #expect(IPCVersion.supported == 1...1)
        #expect(IPCVersion.negotiate(clientMin: 1, clientMax: 1) == 1)
        #expect(IPCVersion.negotiate(clientMin: 0, clientMax: 5) == 1)
        #expect(IPCVersion.negotiate(clientMin: 1, clientMax: UInt64.max) == 1)
        #expect(IPCVersion.negotiate(clientMin: 2, clientMax: 3) == nil)
        #expect(IPCVersion.negotiate(clientMin: 0, clientMax: 0) == nil)
        #expect(IPCVersion.negotiate(clientMin: 1, clientMax: 0) == nil)
    }
}
