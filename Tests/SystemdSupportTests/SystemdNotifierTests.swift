import SystemdSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("SystemdNotifier")
struct SystemdNotifierTests {
    @Test("sends READY, STATUS, RELOADING with MONOTONIC_USEC, EXTEND_TIMEOUT_USEC, STOPPING, WATCHDOG")
    func sendsNotifications() throws {
        let receiver = try DatagramReceiver()
        let notifier = try SystemdNotifier(environment: ["NOTIFY_SOCKET": receiver.path])
        #expect(notifier.isEnabled)
        try notifier.ready(status: "3 streams")
        #expect(receiver.receiveText() == "READY=1\nSTATUS=3 streams\n")
        try notifier.status("line one\nline two")
        #expect(receiver.receiveText() == "STATUS=line one line two\n")
        let before = SystemdNotifier.monotonicMicroseconds()
        try notifier.reloading()
        let reload = try #require(receiver.receiveText())
        #expect(reload.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        let stamp = try #require(UInt64(reload.dropFirst("RELOADING=1\nMONOTONIC_USEC=".count).dropLast()))
        #expect(stamp >= before && stamp <= SystemdNotifier.monotonicMicroseconds())
        try notifier.extendTimeout(.seconds(30))
        #expect(receiver.receiveText() == "EXTEND_TIMEOUT_USEC=30000000\n")
        try notifier.stopping()
        #expect(receiver.receiveText() == "STOPPING=1\n")
        try notifier.watchdog()
        #expect(receiver.receiveText() == "WATCHDOG=1\n")
    }

    @Test("does nothing without NOTIFY_SOCKET")
    func disabledWithoutSocket() throws {
        let notifier = try SystemdNotifier(environment: [:])
        #expect(!notifier.isEnabled)
        try notifier.ready()
        try notifier.stopping()
        #expect(notifier.watchdogInterval == nil)
    }

    @Test("rejects a relative NOTIFY_SOCKET and an oversized one")
    func rejectsBadSocket() {
        #expect(throws: SystemdError.self) { try SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative/path"]) }
        #expect(throws: SystemdError.self) { try SystemdNotifier(environment: ["NOTIFY_SOCKET": "/" + String(repeating: "x", count: 200)]) }
    }

    @Test("reads WATCHDOG_USEC only for this process")
    func watchdogInterval() throws {
        let pid = getpid()
        let mine = try SystemdNotifier(environment: ["WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "\(pid)"])
        #expect(mine.watchdogInterval == .seconds(4))
        let unnamed = try SystemdNotifier(environment: ["WATCHDOG_USEC": "500000"])
        #expect(unnamed.watchdogInterval == .milliseconds(500))
        let other = try SystemdNotifier(environment: ["WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "\(pid + 1)"])
        #expect(other.watchdogInterval == nil)
        let junk = try SystemdNotifier(environment: ["WATCHDOG_USEC": "soon"])
        #expect(junk.watchdogInterval == nil)
    }
}

@Suite("ListenFDs")
struct ListenFDsTests {
    @Test("adopts descriptors meant for this process, with names")
    func parsesNames() throws {
        let pid = getpid()
        let fds = try ListenFDs.parse(
            environment: ["LISTEN_PID": "\(pid)", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "control:extra"], processID: pid, setCloseOnExec: false)
        #expect(fds.descriptors.map(\.descriptor) == [3, 4])
        #expect(fds.descriptors.map(\.name) == ["control", "extra"])
        #expect(fds.listener(named: "extra") == 4)
        #expect(fds.listener(named: "missing") == nil)
        let unnamed = try ListenFDs.parse(environment: ["LISTEN_PID": "\(pid)", "LISTEN_FDS": "1"], processID: pid, setCloseOnExec: false)
        #expect(unnamed.descriptors == [.init(descriptor: 3, name: "unknown")])
        #expect(unnamed.listener(named: "streamd") == 3)
    }

    @Test("ignores descriptors for another process and missing variables")
    func ignoresOthers() throws {
        #expect(try ListenFDs.parse(environment: ["LISTEN_PID": "1", "LISTEN_FDS": "1"], processID: 99) == .none)
        #expect(try ListenFDs.parse(environment: [:]) == .none)
    }

    @Test("rejects malformed values")
    func rejectsMalformed() {
        #expect(throws: SystemdError.self) { try ListenFDs.parse(environment: ["LISTEN_PID": "x", "LISTEN_FDS": "1"], processID: 5) }
        #expect(throws: SystemdError.self) { try ListenFDs.parse(environment: ["LISTEN_PID": "5", "LISTEN_FDS": "-1"], processID: 5) }
        #expect(throws: SystemdError.self) { try ListenFDs.parse(environment: ["LISTEN_PID": "5", "LISTEN_FDS": "100000"], processID: 5) }
        #expect(throws: SystemdError.self) {
            try ListenFDs.parse(environment: ["LISTEN_PID": "5", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"], processID: 5, setCloseOnExec: false)
        }
    }
}
