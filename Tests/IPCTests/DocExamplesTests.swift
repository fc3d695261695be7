import CBOR
import Foundation
import IPC
import Testing

/// The examples of docs/IPC.md are produced here, and the document must show exactly these
/// bytes: each example is a fenced block right after a `<!-- ipc-example: NAME -->` line, holding
/// the payload in CBOR diagnostic notation and then the whole frame in hex, 16 bytes a line.
@Suite struct DocExamplesTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let document = repositoryRoot.appendingPathComponent("docs/IPC.md")

    /// The examples, in document order.
    static var examples: [(name: String, payload: CBORValue)] {
        let chat = Fixtures.chat
        return [
            ("hello-request", IPCRequestMessage(id: 1, request: .hello(minVersion: 1, maxVersion: 1, client: "example/1")).cborValue),
            ("hello-reply", IPCServerMessage.reply(id: 1, .success(.hello(version: 1, daemon: "streamd 0.1.0", instance: Fixtures.instance, features: ["subscribe"]))).cborValue),
            ("create-request", IPCRequestMessage(id: 2, request: .create(name: chat, mode: .stream)).cborValue),
            ("write-request", IPCRequestMessage(id: 3, request: .write(name: chat, offset: 0, data: Array("hello".utf8))).cborValue),
            ("written-reply", IPCServerMessage.reply(id: 3, .success(.written(accepted: 5, offset: 5))).cborValue),
            ("wrong-offset-reply", IPCServerMessage.reply(id: 4, .failure(IPCError(.wrongOffset, "write at 9 but the stream is at 5", expectedOffset: 5))).cborValue),
            ("read-request", IPCRequestMessage(id: 5, request: .read(name: chat, offset: 0, maxLength: 65536, wait: true)).cborValue),
            ("data-reply", IPCServerMessage.reply(id: 5, .success(.data(offset: 0, bytes: Array("hi".utf8), end: false))).cborValue),
            ("status-reply", IPCServerMessage.reply(id: 6, .success(.status(IPCStreamInfo(
                name: chat, role: .listener, state: .open, bytesWritten: 5, bytesDurable: 5, bytesAcked: 5,
                bytesReceived: 2, bytesConsumed: 0, readable: 2, writeBuffered: 0)))).cborValue),
            ("data-available-event", IPCServerMessage.event(.dataAvailable(name: chat, offset: 2)).cborValue),
            ("goodbye", IPCServerMessage.goodbye(IPCError(.malformed, "request is not a CBOR map")).cborValue),
        ]
    }

    /// The text of one example's fenced block (without the fences).
    static func block(_ payload: CBORValue) -> String {
        let frame = IPCFraming.frame(payload.encoded())
        var lines = [diagnostic(payload)]
        for start in stride(from: 0, to: frame.count, by: 16) {
            lines.append(frame[start..<min(frame.count, start + 16)].map { hex($0) }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }

    /// The blocks the document holds, by example name.
    static func documentBlocks() throws -> [(name: String, text: String)] {
        let lines = try String(contentsOf: document, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var blocks: [(String, String)] = []
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if line.hasPrefix("<!-- ipc-example: "), line.hasSuffix(" -->") {
                let name = String(line.dropFirst("<!-- ipc-example: ".count).dropLast(" -->".count))
                guard index + 1 < lines.count, lines[index + 1].hasPrefix("```") else {
                    Issue.record("example \(name) is not followed by a fenced block")
                    index += 1
                    continue
                }
                var body: [String] = []
                index += 2
                while index < lines.count, lines[index] != "```" {
                    body.append(lines[index])
                    index += 1
                }
                blocks.append((name, body.joined(separator: "\n")))
            }
            index += 1
        }
        return blocks
    }

    @Test func documentShowsExactlyTheseExamples() throws {
        let expected = Self.examples.map { ($0.name, Self.block($0.payload)) }
        // IPC_WRITE_EXAMPLES=path writes every block there, ready to paste into the document.
        if let path = ProcessInfo.processInfo.environment["IPC_WRITE_EXAMPLES"] {
            let all = expected.map { "<!-- ipc-example: \($0.0) -->\n```text\n\($0.1)\n```\n" }.joined(separator: "\n")
            try all.write(toFile: path, atomically: true, encoding: .utf8)
        }
        let documented = try Self.documentBlocks()
        #expect(documented.map(\.name) == expected.map(\.0), "docs/IPC.md must hold these examples in this order")
        for (name, text) in expected {
            let shown = documented.first { $0.name == name }?.text
            #expect(shown == text, "docs/IPC.md example \(name) should read:\n<!-- ipc-example: \(name) -->\n```text\n\(text)\n```")
        }
    }

    @Test func examplesDecode() throws {
        for (name, payload) in Self.examples {
            if name.hasSuffix("-request") {
                #expect(try IPCRequestMessage(decoding: payload.encoded()).cborValue == payload)
            } else {
                #expect(try IPCServerMessage(decoding: payload.encoded()).cborValue == payload)
            }
        }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return byte < 16 ? "0" + digits : digits
    }

    /// RFC 8949 diagnostic notation, on one line.
    static func diagnostic(_ value: CBORValue) -> String {
        switch value {
        case .unsigned(let n): return "\(n)"
        case .negative(let n): return n == UInt64.max ? "-18446744073709551616" : "-\(n + 1)"
        case .bytes(let bytes): return "h'" + bytes.map { hex($0) }.joined() + "'"
        case .text(let text):
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case " "..."~": out.unicodeScalars.append(scalar)
                default: out += "\\u{\(String(scalar.value, radix: 16))}"
                }
            }
            return out + "\""
        case .array(let elements): return "[" + elements.map(diagnostic).joined(separator: ", ") + "]"
        case .map(let entries): return "{" + entries.map { diagnostic($0.key) + ": " + diagnostic($0.value) }.joined(separator: ", ") + "}"
        case .tagged(let tag, let item): return "\(tag)(\(diagnostic(item)))"
        case .bool(let flag): return flag ? "true" : "false"
        case .null: return "null"
        case .undefined: return "undefined"
        case .float(let number): return "\(number)"
        }
    }
}
