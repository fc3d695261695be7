import Logging
import ServiceLifecycle
import StreamDaemon
import Synchronization
import SystemdSupport
import UnixSignals

/// streamd's side of the systemd protocol, run next to the daemon in the service group:
/// readiness, a live `STATUS=` line, watchdog pings backed by a liveness check, and
/// configuration reloads on SIGHUP (`RELOADING=1` … `READY=1`).
struct SystemdIntegration: Service {
    /// State shared between the daemon's hooks and this service.
    final class State: Sendable {
        private let probe = Mutex<DaemonProbe?>(nil)
        private let ready = Mutex(false)
        private let status = Mutex("starting")
        let probes: AsyncStream<DaemonProbe>
        private let probeSink: AsyncStream<DaemonProbe>.Continuation

        init() {
            (probes, probeSink) = AsyncStream.makeStream(of: DaemonProbe.self, bufferingPolicy: .bufferingNewest(1))
        }

        func started(_ probe: DaemonProbe) {
            self.probe.withLock { $0 = probe }
            probeSink.yield(probe)
            probeSink.finish()
        }

        var currentProbe: DaemonProbe? { probe.withLock { $0 } }
        var isReady: Bool {
            get { ready.withLock { $0 } }
            set { ready.withLock { $0 = newValue } }
        }
        var statusText: String {
            get { status.withLock { $0 } }
            set { status.withLock { $0 = newValue } }
        }
    }

    let notifier: SystemdNotifier
    let state: State
    let hangups: UnixSignalsSequence
    let logger: Logger
    /// Re-reads the configuration and applies what may change live.
    let reload: @Sendable () -> Void
    /// How often `STATUS=` is refreshed.
    var statusInterval: Duration = .seconds(5)

    /// The daemon hooks that report to systemd.
    static func hooks(notifier: SystemdNotifier, state: State) -> StreamDaemon.Hooks {
        var hooks = StreamDaemon.Hooks()
        hooks.restoring = { restored, total in
            // Called every 1,000 streams: ask for more start-up time and say how far we are.
            try? notifier.notify([("EXTEND_TIMEOUT_USEC", "30000000"), ("STATUS", "restoring streams: \(restored)/\(total)")])
        }
        hooks.ready = { probe in
            state.started(probe)
            let text = Self.statusLine(await probe.snapshot())
            state.statusText = text
            state.isReady = true
            try? notifier.ready(status: text)
        }
        hooks.stopping = {
            state.isReady = false
            try? notifier.notify([("STOPPING", "1"), ("STATUS", "stopping")])
        }
        return hooks
    }

    /// The `STATUS=` text for a snapshot.
    static func statusLine(_ snapshot: DaemonProbe.Snapshot) -> String {
        var line = "\(snapshot.streams) streams, \(snapshot.active) active"
        if snapshot.damaged > 0 { line += ", \(snapshot.damaged) damaged" }
        line += ", kpclientd \(snapshot.kpclientdConnected ? "connected" : "disconnected")"
        line += ", \(snapshot.connections) app connection\(snapshot.connections == 1 ? "" : "s")"
        return line
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await handleHangups() }
                group.addTask { await reportStatus() }
                if let interval = notifier.watchdogInterval {
                    group.addTask { await feedWatchdog(interval: interval) }
                }
            }
        }
    }

    private func handleHangups() async {
        for await _ in hangups {
            try? notifier.reloading()
            logger.notice("SIGHUP: reloading the configuration")
            reload()
            if state.isReady { try? notifier.ready(status: state.statusText) }
        }
    }

    private func reportStatus() async {
        var iterator = state.probes.makeAsyncIterator()
        guard let probe = await iterator.next() else { return }
        while !Task.isCancelled {
            try? await Task.sleep(for: statusInterval)
            guard state.isReady else { continue }
            let line = Self.statusLine(await probe.snapshot())
            if line != state.statusText {
                state.statusText = line
                try? notifier.status(line)
            }
        }
    }

    /// Pings systemd only after a round trip through the stream host succeeded in time, so a
    /// stuck daemon is restarted.
    private func feedWatchdog(interval: Duration) async {
        let clock = ContinuousClock()
        while !Task.isCancelled {
            let start = clock.now
            if let probe = state.currentProbe {
                let alive = await probe.ping()
                if alive, clock.now - start < interval / 2 {
                    try? notifier.watchdog()
                } else {
                    logger.warning("liveness check failed; not feeding the watchdog", metadata: ["took": "\(clock.now - start)"])
                }
            } else {
                // Still starting (restoring): the start timeout covers this phase.
                try? notifier.watchdog()
            }
            try? await Task.sleep(for: interval / 4)
        }
    }
}
