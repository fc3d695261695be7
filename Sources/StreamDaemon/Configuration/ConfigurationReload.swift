/// What a configuration reload (SIGHUP) may change while the daemon runs.
public struct ConfigurationReload: Sendable {
    /// The configuration in effect after the reload: the old one with the live settings taken
    /// from the new file.
    public var effective: DaemonConfiguration
    /// Keys whose new value took effect (only `log_level` today).
    public var applied: [String]
    /// Keys whose value changed in the file but cannot change while running; they keep their
    /// old value until a restart.
    public var needsRestart: [String]

    /// Compares the running configuration with a freshly loaded one.
    public init(running old: DaemonConfiguration, loaded new: DaemonConfiguration) {
        var effective = old
        var applied: [String] = []
        if old.logLevel != new.logLevel {
            effective.logLevel = new.logLevel
            applied.append("log_level")
        }
        var fixed: [String] = []
        func compare<Value: Equatable>(_ key: String, _ path: KeyPath<DaemonConfiguration, Value>) {
            if old[keyPath: path] != new[keyPath: path] { fixed.append(key) }
        }
        compare("socket", \.socketPath)
        compare("state_dir", \.stateDirectory)
        compare("kpclientd", \.kpclientd)
        compare("log_target", \.logTarget)
        compare("max_connections", \.maxConnections)
        compare("max_requests_per_connection", \.maxRequestsPerConnection)
        compare("max_streams", \.maxStreams)
        compare("client_timeout", \.clientTimeout)
        compare("shutdown_timeout", \.shutdownTimeout)
        compare("scheduler", \.scheduler)
        compare("stream", \.stream)
        compare("embedded", \.embedded)
        self.effective = effective
        self.applied = applied
        self.needsRestart = fixed
    }
}
