import Logging

#if canImport(Glibc)
import Glibc
#endif

/// Where the daemon's log goes.
public enum LogTarget: String, Sendable, CaseIterable {
    /// The journal if standard error is connected to it (`$JOURNAL_STREAM`), else standard error.
    case auto
    /// Native journal entries, always.
    case journal
    /// Plain lines on standard error.
    case stderr

    /// Whether `$JOURNAL_STREAM` (`device:inode`) names the file standard error is open on.
    public static func stderrIsJournal(environment: [String: String]) -> Bool {
        guard let value = environment["JOURNAL_STREAM"] else { return false }
        let parts = value.split(separator: ":")
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return UInt64(info.st_dev) == device && UInt64(info.st_ino) == inode
    }

    /// Whether this target, in `environment`, means the journal.
    public func usesJournal(environment: [String: String]) -> Bool {
        switch self {
        case .auto: return Self.stderrIsJournal(environment: environment)
        case .journal: return true
        case .stderr: return false
        }
    }

    /// A handler factory for `LoggingSystem.bootstrap` or `Logger(label:factory:)`: journal or
    /// standard-error handlers whose level follows `control`.
    ///
    /// The journal socket is `$STREAMD_JOURNAL_SOCKET` if set (for tests), else journald's.
    public func makeFactory(
        identifier: String, control: LogLevelControl, environment: [String: String]
    ) -> @Sendable (String) -> any LogHandler {
        if usesJournal(environment: environment) {
            let sink = JournalLogHandler.Sink(path: environment["STREAMD_JOURNAL_SOCKET"] ?? JournalLogHandler.defaultSocketPath)
            return { label in
                LiveLevelLogHandler(JournalLogHandler(label: label, identifier: identifier, sink: sink), control: control)
            }
        }
        return { label in LiveLevelLogHandler(StreamLogHandler.standardError(label: label), control: control) }
    }
}
