import Foundation
import Logging
import SystemdSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("JournalLogHandler")
struct JournalLogHandlerTests {
    @Test("encodes plain values as KEY=VALUE and values with newlines in the binary form")
    func encoding() throws {
        var entry = JournalEntry()
        entry.append("MESSAGE", "two\nlines")
        entry.append("PRIORITY", "6")
        let bytes = entry.encoded()
        let expected: [UInt8] = Array("MESSAGE\n".utf8) + [9, 0, 0, 0, 0, 0, 0, 0] + Array("two\nlines\nPRIORITY=6\n".utf8)
        #expect(bytes == expected)
        #expect(JournalEntry(decoding: bytes) == entry)
        #expect(JournalEntry(decoding: Array("MESSAGE\n".utf8) + [200, 0, 0, 0, 0, 0, 0, 0] + Array("x\n".utf8)) == nil)
    }

    @Test("maps metadata keys to journal field names")
    func fieldNames() {
        #expect(JournalEntry.fieldName(for: "stream") == "STREAM_NAME")
        #expect(JournalEntry.fieldName(for: "peer-ack") == "PEER_ACK")
        #expect(JournalEntry.fieldName(for: "_trusted") == "X__TRUSTED")
        #expect(JournalEntry.fieldName(for: "9lives") == "X_9LIVES")
        #expect(JournalEntry.fieldName(for: String(repeating: "a", count: 100)).count == 64)
    }

    @Test("maps levels to priorities")
    func priorities() {
        let expected: [Logger.Level: Int] = [.trace: 7, .debug: 7, .info: 6, .notice: 5, .warning: 4, .error: 3, .critical: 2]
        for (level, priority) in expected { #expect(JournalLogHandler.priority(level) == priority) }
    }

    @Test("sends one native entry per log call with code location, metadata and MESSAGE_ID")
    func sendsEntries() throws {
        let journal = try DatagramReceiver()
        let control = LogLevelControl(.info)
        let factory = LogTarget.journal.makeFactory(
            identifier: "streamd", control: control, environment: ["STREAMD_JOURNAL_SOCKET": journal.path])
        var logger = Logger(label: "streamd", factory: factory)
        logger[metadataKey: "instance"] = "a1"
        logger.debug("not sent: below the level")
        logger.warning("stream opened\nsecond line", metadata: ["stream": "chat", "event": "stream-opened"]); let line = #line
        let entry = try #require(journal.receive().flatMap(JournalEntry.init(decoding:)))
        #expect(entry.value("MESSAGE") == "stream opened\nsecond line")
        #expect(entry.value("PRIORITY") == "4")
        #expect(entry.value("SYSLOG_IDENTIFIER") == "streamd")
        #expect(entry.value("STREAM_NAME") == "chat")
        #expect(entry.value("INSTANCE") == "a1")
        #expect(entry.value("EVENT") == "stream-opened")
        #expect(entry.value("MESSAGE_ID") == StreamdMessageID.streamOpened)
        #expect(entry.value("CODE_LINE") == "\(line)")
        #expect(entry.value("CODE_FILE")?.hasSuffix("JournalLogHandlerTests.swift") == true)
        #expect(entry.value("CODE_FUNC")?.hasPrefix("sendsEntries") == true)

        // The level follows the control, live.
        control.current = .debug
        logger.debug("now sent", metadata: ["message": "renamed"])
        let debug = try #require(journal.receive().flatMap(JournalEntry.init(decoding:)))
        #expect(debug.value("MESSAGE") == "now sent")
        #expect(debug.value("PRIORITY") == "7")
        #expect(debug.value("META_MESSAGE") == "renamed")
    }

    @Test("a logger copy may raise its own minimum above the shared level")
    func copyFloor() {
        let control = LogLevelControl(.info)
        let factory = LogTarget.stderr.makeFactory(identifier: "streamd", control: control, environment: [:])
        let logger = Logger(label: "x", factory: factory)
        var quiet = logger
        quiet.logLevel = .warning
        #expect(logger.logLevel == .info)
        #expect(quiet.logLevel == .warning)
        control.current = .error
        #expect(logger.logLevel == .error)
        #expect(quiet.logLevel == .error)
        control.current = .debug
        #expect(logger.logLevel == .debug)
        #expect(quiet.logLevel == .warning)
    }

    @Test("auto uses the journal only when JOURNAL_STREAM names standard error")
    func detectsJournalStream() {
        var info = stat()
        #expect(fstat(2, &info) == 0)
        let matching = ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino)"]
        #expect(LogTarget.stderrIsJournal(environment: matching))
        #expect(LogTarget.auto.usesJournal(environment: matching))
        #expect(!LogTarget.stderr.usesJournal(environment: matching))
        let other = ["JOURNAL_STREAM": "\(info.st_dev):\(info.st_ino &+ 1)"]
        #expect(!LogTarget.auto.usesJournal(environment: other))
        #expect(!LogTarget.auto.usesJournal(environment: ["JOURNAL_STREAM": "junk"]))
        #expect(!LogTarget.auto.usesJournal(environment: [:]))
        #expect(LogTarget.journal.usesJournal(environment: [:]))
    }

    @Test("entries wait for room while journald's queue is full instead of losing their fields")
    func waitsForRoomInAFullQueue() async throws {
        // An unread datagram socket holds only net.unix.max_dgram_qlen entries (10 by default on
        // a system without systemd's sysctl.d): more used to go to standard error, unstructured.
        let journal = try DatagramReceiver()
        let control = LogLevelControl(.info)
        let factory = LogTarget.journal.makeFactory(
            identifier: "streamd", control: control, environment: ["STREAMD_JOURNAL_SOCKET": journal.path])
        let count = 200
        // Both ends on threads of their own: on a busy cooperative pool the reader could start
        // later than an entry's longest wait, which is the loss the test is about.
        let indices: [String] = await withCheckedContinuation { continuation in
            Thread {
                let logger = Logger(label: "streamd", factory: factory)
                for index in 0..<count { logger.info("entry", metadata: ["index": "\(index)"]) }
            }.start()
            Thread {
                usleep(50_000)  // the queue fills while nobody reads
                var indices: [String] = []
                while indices.count < count, let entry = journal.receive().flatMap(JournalEntry.init(decoding:)) {
                    indices.append(entry.value("INDEX") ?? "?")
                }
                continuation.resume(returning: indices)
            }.start()
        }
        #expect(indices == (0..<count).map { "\($0)" })
    }
}
