import CSystemd
import Logging

#if canImport(Glibc)
import Glibc
#endif

/// A swift-log handler that writes native journal entries: `MESSAGE`, `PRIORITY`,
/// `SYSLOG_IDENTIFIER`, `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, `MESSAGE_ID` for key events (see
/// ``StreamdMessageID``), and every metadata key as an uppercase field.
///
/// If the journal cannot be reached the entry goes to standard error as one line.
public struct JournalLogHandler: LogHandler {
    /// journald's native socket.
    public static let defaultSocketPath = "/run/systemd/journal/socket"

    /// Where entries go; shared by every copy of the handler.
    public final class Sink: Sendable {
        private let sender: UnixDatagramSender?
        private let isSystemJournal: Bool
        /// How long one entry may wait while journald's queue is full, as libsystemd's blocking
        /// send would, before it goes to standard error unstructured. Never waiting lost the
        /// fields of entries logged the moment a reload switched on debug logging (the debug
        /// entries of every thread filled the queue; a systemd-test check failed on it).
        static let longestWait = Duration.milliseconds(250)

        /// Opens a datagram socket for `path` (nothing is sent until a log call).
        public init(path: String = JournalLogHandler.defaultSocketPath) {
            sender = try? UnixDatagramSender(path: path, sendBuffer: 8 << 20, waitUpTo: Self.longestWait)
            isSystemJournal = path == JournalLogHandler.defaultSocketPath
        }

        /// Sends an entry, or writes it to standard error if the journal is unreachable.
        public func send(_ entry: JournalEntry) {
            if let sender {
                do {
                    try sender.send(entry.encoded())
                    return
                } catch where error.code == .tooLarge && isSystemJournal {
                    // Larger than a datagram: libsystemd passes it in a sealed memfd.
                    if Self.sendThroughLibsystemd(entry) { return }
                } catch {}
            }
            var line = entry.value("MESSAGE") ?? ""
            for (name, value) in entry.fields where !JournalLogHandler.ownFields.contains(name) {
                line += " \(name)=\(String(decoding: value, as: UTF8.self))"
            }
            let bytes = Array((line.replacingNewlines() + "\n").utf8)
            _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        }

        private static func sendThroughLibsystemd(_ entry: JournalEntry) -> Bool {
            // sd_journal_sendv takes "NAME=value" items and picks the encoding itself.
            let items = entry.fields.map { Array($0.name.utf8) + [UInt8(ascii: "=")] + $0.value }
            var vectors: [iovec] = []
            var buffers: [UnsafeMutableRawBufferPointer] = []
            defer { buffers.forEach { $0.deallocate() } }
            for item in items {
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(item.count, 1), alignment: 1)
                buffer.copyBytes(from: item)
                buffers.append(buffer)
                vectors.append(iovec(iov_base: buffer.baseAddress, iov_len: item.count))
            }
            return sd_journal_sendv(&vectors, Int32(vectors.count)) >= 0
        }
    }

    /// Fields the handler sets itself; metadata with these names is renamed `META_…`.
    static let ownFields: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER", "ERROR",
    ]

    private let label: String
    private let identifier: String
    private let sink: Sink

    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    /// Creates a handler for the logger `label`, tagging entries with `identifier`.
    public init(label: String, identifier: String, sink: Sink, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.identifier = identifier
        self.sink = sink
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The journal priority of a swift-log level.
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        sink.send(entry(for: event))
    }

    /// The journal entry for a log event.
    public func entry(for event: LogEvent) -> JournalEntry {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        var entry = JournalEntry()
        entry.append("MESSAGE", event.message.description)
        entry.append("PRIORITY", "\(Self.priority(event.level))")
        entry.append("SYSLOG_IDENTIFIER", identifier)
        entry.append("LOGGER", label)
        entry.append("CODE_FILE", event.file)
        entry.append("CODE_LINE", "\(event.line)")
        entry.append("CODE_FUNC", event.function)
        if let name = merged[StreamdMessageID.metadataKey].map({ "\($0)" }), let id = StreamdMessageID.byEvent[name] {
            entry.append("MESSAGE_ID", id)
        }
        if let error = event.error { entry.append("ERROR", "\(error)") }
        for key in merged.keys.sorted() {
            var name = JournalEntry.fieldName(for: key)
            if Self.ownFields.contains(name) { name = String(("META_" + name).prefix(JournalEntry.maxNameLength)) }
            entry.append(name, "\(merged[key]!)")
        }
        return entry
    }
}
