import Logging
import Synchronization

/// A log level shared by every logger made from one factory, so that a configuration reload
/// can change it while the daemon runs.
///
/// A `Logger` copy may still raise its own minimum (`logger.logLevel = .warning`); the level it
/// logs at is the higher of the two.
public final class LogLevelControl: Sendable {
    private let level: Mutex<Logger.Level>

    /// Creates a control starting at `level`.
    public init(_ level: Logger.Level) { self.level = Mutex(level) }

    /// The shared minimum level.
    public var current: Logger.Level {
        get { level.withLock { $0 } }
        set { level.withLock { $0 = newValue } }
    }
}

/// Wraps a log handler so its level follows a ``LogLevelControl``.
public struct LiveLevelLogHandler<Inner: LogHandler>: LogHandler {
    private var inner: Inner
    private let control: LogLevelControl
    private var floor: Logger.Level = .trace

    /// Wraps `inner`.
    public init(_ inner: Inner, control: LogLevelControl) {
        self.inner = inner
        self.control = control
    }

    public var logLevel: Logger.Level {
        get { max(control.current, floor) }
        set { floor = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) { inner.log(event: event) }
}
