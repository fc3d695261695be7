import Logging
import StreamDaemon
import Testing

@Suite("Configuration reload and log_target")
struct ConfigurationReloadTests {
    private let environment = ["XDG_RUNTIME_DIR": "/run/user/1000", "HOME": "/home/u"]

    @Test("log_target parses auto, journal and stderr and rejects anything else")
    func logTarget() throws {
        var configuration = DaemonConfiguration(environment: environment)
        #expect(configuration.logTarget == .auto)
        try ConfigurationLoader.apply(toml: "log_target = \"journal\"", to: &configuration)
        #expect(configuration.logTarget == .journal)
        #expect(throws: ConfigurationError(key: "log_target", message: "must be auto, journal or stderr (got \"syslog\")")) {
            try ConfigurationLoader.apply(toml: "log_target = \"syslog\"", to: &configuration)
        }
        var overrides = ConfigurationOverrides()
        overrides.logTarget = "stderr"
        #expect(try ConfigurationLoader.load(path: nil, overrides: overrides, environment: environment).logTarget == .stderr)
    }

    @Test("a reload applies log_level and keeps settings that cannot change live")
    func reload() throws {
        let old = DaemonConfiguration(environment: environment)
        var new = old
        try ConfigurationLoader.apply(
            toml: "log_level = \"debug\"\nsocket = \"/tmp/other.sock\"\nkpclientd = \"tcp:localhost:64331\"\n[stream]\nsend_window = 8\n",
            to: &new)
        let result = ConfigurationReload(running: old, loaded: new)
        #expect(result.applied == ["log_level"])
        #expect(result.needsRestart == ["socket", "kpclientd", "stream"])
        #expect(result.effective.logLevel == .debug)
        #expect(result.effective.socketPath == old.socketPath)
        #expect(result.effective.kpclientd == .embedded)
        #expect(result.effective.stream.sendWindow == old.stream.sendWindow)
        let unchanged = ConfigurationReload(running: old, loaded: old)
        #expect(unchanged.applied.isEmpty && unchanged.needsRestart.isEmpty)
    }
}
