#if canImport(Glibc)
import Glibc
#endif

/// Tells the service manager about the daemon's state (`sd_notify(3)`): readiness, status text,
/// reloads, shutdown, start-up timeout extensions and watchdog pings.
///
/// Sends datagrams itself on `$NOTIFY_SOCKET`, so tests can point it at a socket of their own.
/// Without `$NOTIFY_SOCKET` every call does nothing.
public struct SystemdNotifier: Sendable {
    private let sender: UnixDatagramSender?
    /// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, when `$WATCHDOG_PID` is unset
    /// or this process), or `nil` for no watchdog.
    public let watchdogInterval: Duration?

    /// The longest notification sent.
    public static let maxMessageLength = 4096

    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` from `environment`.
    ///
    /// - Throws: ``SystemdError`` when `$NOTIFY_SOCKET` is set but unusable.
    public init(environment: [String: String], processID: Int32 = getpid()) throws(SystemdError) {
        if let path = environment["NOTIFY_SOCKET"], !path.isEmpty {
            sender = try UnixDatagramSender(path: path)
        } else {
            sender = nil
        }
        watchdogInterval = Self.watchdog(environment: environment, processID: processID)
    }

    /// A notifier that sends nothing.
    public static let disabled = SystemdNotifier()

    private init() {
        sender = nil
        watchdogInterval = nil
    }

    private static func watchdog(environment: [String: String], processID: Int32) -> Duration? {
        guard let text = environment["WATCHDOG_USEC"], let microseconds = UInt64(text), microseconds > 0,
            microseconds < UInt64(Int64.max / 1000)
        else { return nil }
        if let pid = environment["WATCHDOG_PID"], !pid.isEmpty, Int32(pid) != processID { return nil }
        return .microseconds(Int64(microseconds))
    }

    /// Whether a service manager listens (`$NOTIFY_SOCKET` was set).
    public var isEnabled: Bool { sender != nil }

    /// Sends `KEY=VALUE` assignments in one datagram; a no-op without a service manager.
    ///
    /// Values must not contain newlines (they are replaced by spaces).
    public func notify(_ assignments: [(String, String)]) throws(SystemdError) {
        guard let sender else { return }
        var text = ""
        for (key, value) in assignments {
            let flat = value.contains("\n") ? value.replacingNewlines() : value
            text += "\(key)=\(flat)\n"
        }
        let bytes = Array(text.utf8)
        guard bytes.count <= Self.maxMessageLength else {
            throw SystemdError(.tooLarge, "notification of \(bytes.count) bytes exceeds \(Self.maxMessageLength)")
        }
        try sender.send(bytes)
    }

    /// `READY=1`, optionally with a status text.
    public func ready(status: String? = nil) throws(SystemdError) {
        try notify([("READY", "1")] + (status.map { [("STATUS", $0)] } ?? []))
    }

    /// `STATUS=text`: free-form text shown by `systemctl status`.
    public func status(_ text: String) throws(SystemdError) {
        try notify([("STATUS", String(text.prefix(1024)))])
    }

    /// `EXTEND_TIMEOUT_USEC=`: asks for `duration` more before the start (or stop) times out.
    public func extendTimeout(_ duration: Duration) throws(SystemdError) {
        try notify([("EXTEND_TIMEOUT_USEC", "\(duration.microseconds)")])
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` (now); follow with ``ready(status:)`` when done.
    public func reloading() throws(SystemdError) {
        try notify([("RELOADING", "1"), ("MONOTONIC_USEC", "\(Self.monotonicMicroseconds())")])
    }

    /// `STOPPING=1`.
    public func stopping() throws(SystemdError) {
        try notify([("STOPPING", "1")])
    }

    /// `WATCHDOG=1`: the daemon is alive.
    public func watchdog() throws(SystemdError) {
        try notify([("WATCHDOG", "1")])
    }

    /// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC=` wants it.
    public static func monotonicMicroseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000 + UInt64(time.tv_nsec) / 1000
    }
}

extension Duration {
    /// The duration in whole microseconds (negative durations count as zero).
    var microseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0 else { return 0 }
        return UInt64(seconds) * 1_000_000 + UInt64(attoseconds / 1_000_000_000_000)
    }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
