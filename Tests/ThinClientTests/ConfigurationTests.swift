import Testing

@testable import ThinClient

@Suite("thinclient.toml [Dial] configuration")
struct ConfigurationTests {
    @Test func tcpWithNetwork() throws {
        let dial = try DialAddress(
            thinClientTOML: """
                [Dial]
                  [Dial.Tcp]
                  Address = "localhost:64331"
                  Network = "tcp"
                """
        )
        #expect(dial == .tcp(host: "localhost", port: 64331, network: .tcp))
    }

    @Test func tcpDefaultsToTCPAndStripsIPv6Brackets() throws {
        let dial = try DialAddress(thinClientTOML: "[Dial.Tcp]\nAddress = \"[::1]:7000\"\n")
        #expect(dial == .tcp(host: "::1", port: 7000, network: .tcp))
        let four = try DialAddress(thinClientTOML: "[Dial.Tcp]\nAddress = \"127.0.0.1:1\"\nNetwork = \"tcp4\"\n")
        #expect(four == .tcp(host: "127.0.0.1", port: 1, network: .tcp4))
        let six = try DialAddress(thinClientTOML: "[Dial.Tcp]\nAddress = \"[::1]:2\"\nNetwork = \"tcp6\"\n")
        #expect(six == .tcp(host: "::1", port: 2, network: .tcp6))
    }

    @Test func unixPathAndAbstractName() throws {
        #expect(try DialAddress(thinClientTOML: "[Dial.Unix]\nAddress = \"/run/kp/kp.sock\"\n") == .unix(path: "/run/kp/kp.sock"))
        #expect(try DialAddress(thinClientTOML: "[Dial.Unix]\nAddress = \"@katzenpost\"\n") == .abstract(name: "katzenpost"))
    }

    @Test func configurationFromTOMLKeepsDefaults() throws {
        let configuration = try ThinClientConfiguration(thinClientTOML: "[Dial.Unix]\nAddress = \"@kp\"\n")
        #expect(configuration.dial == .abstract(name: "kp"))
        #expect(configuration.maxOutstandingMixnetRequests == 4096)
        #expect(configuration.daemonQueueCapacity == 16)
        #expect(configuration.fallbackLambdaP == 0.00025)
        #expect(configuration.operationDeadline == DeadlinePolicy())
        #expect(configuration.handshakeTimeout >= .seconds(30))
        #expect(configuration.reconnect.initialDelay == .seconds(1))
        #expect(configuration.reconnect.maximumDelay == .seconds(60))
    }

    @Test(
        "invalid documents are rejected with a clear message",
        arguments: [
            ("", "missing [Dial]"),
            ("Network = \"tcp\"\n[Dial.Tcp]\nAddress = \"a:1\"\n", "unknown top-level key \"Network\""),
            ("[Dial.Tcp]\nAddress = \"a:1\"\n[SphinxGeometry]\nNrHops = 5\n", "[SphinxGeometry] is no longer allowed"),
            ("[Dial.Tcp]\nAddress = \"a:1\"\n[PigeonholeGeometry]\nX = 1\n", "[PigeonholeGeometry] is no longer allowed"),
            ("[Dial]\n", "exactly one of [Dial.Tcp] or [Dial.Unix] (found: none)"),
            ("[Dial.Tcp]\nAddress = \"a:1\"\n[Dial.Unix]\nAddress = \"/x\"\n", "exactly one of [Dial.Tcp] or [Dial.Unix] (found: Tcp, Unix)"),
            ("[Dial.Tcp]\nAddress = \"a:1\"\nTimeout = 3\n", "unknown key \"Timeout\" in [Dial.Tcp]"),
            ("[Dial.Unix]\nAddress = \"/x\"\nNetwork = \"unix\"\n", "unknown key \"Network\" in [Dial.Unix]"),
            ("[Dial.Tcp]\nNetwork = \"tcp\"\n", "[Dial.Tcp] is missing Address"),
            ("[Dial.Tcp]\nAddress = 5\n", "Address must be a string"),
            ("[Dial.Tcp]\nAddress = \"localhost\"\n", "has no port"),
            ("[Dial.Tcp]\nAddress = \"localhost:99999\"\n", "invalid port"),
            ("[Dial.Tcp]\nAddress = \":80\"\n", "empty host"),
            ("[Dial.Tcp]\nAddress = \"a:1\"\nNetwork = \"udp\"\n", "Network must be"),
            ("[Dial.Unix]\nAddress = \"@\"\n", "empty name"),
            ("[Dial.Unix]\nAddress = \"\"\n", "is empty"),
            ("[Dial.Ws]\nAddress = \"ws://x\"\n", "websocket"),
            ("[Dial.Quic]\nAddress = \"x\"\n", "unknown transport [Dial.Quic]"),
            ("Dial = 3\n", "Dial must be a table"),
            ("[Dial.Tcp\n", "not valid TOML"),
        ]
    )
    func rejects(document: String, expected: String) {
        do {
            let dial = try DialAddress(thinClientTOML: document)
            Issue.record("accepted \(dial)")
        } catch {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains(expected), "\(error.message)")
        }
    }

    @Test func readsAFile() throws {
        let path = "/tmp/thinclient-config-test-\(UInt32.random(in: 0 ... .max)).toml"
        let text = "[Dial]\n[Dial.Tcp]\nAddress = \"127.0.0.1:64331\"\n"
        let file = fopen(path, "w")
        #expect(file != nil)
        fputs(text, file)
        fclose(file)
        defer { unlink(path) }
        #expect(try DialAddress(thinClientTOMLFile: path) == .tcp(host: "127.0.0.1", port: 64331, network: .tcp))
        #expect(throws: ThinClientError.self) { try DialAddress(thinClientTOMLFile: path + ".missing") }
    }

    @Test func invalidBoundsAreRejected() {
        var configuration = ThinClientConfiguration(dial: .unix(path: "/x"))
        configuration.maxOutstandingMixnetRequests = 0
        #expect(throws: ThinClientError.self) { try configuration.validated() }
        var delay = ThinClientConfiguration(dial: .unix(path: "/x"))
        #expect(delay.maxDaemonQueueDelay == nil)
        delay.maxDaemonQueueDelay = .zero
        #expect(throws: ThinClientError.self) { try delay.validated() }
        delay.maxDaemonQueueDelay = .seconds(4)
        #expect(throws: Never.self) { try delay.validated() }
    }

    @Test func backoffDoublesToTheMaximumAndResets() {
        var backoff = Backoff(policy: ReconnectPolicy())
        let delays = (0..<9).map { _ in backoff.nextDelay() }
        #expect(delays == [1, 2, 4, 8, 16, 32, 60, 60, 60].map { Duration.seconds($0) })
        backoff.reset()
        #expect(backoff.nextDelay() == .seconds(1))
        var fast = Backoff(policy: ReconnectPolicy(initialDelay: .milliseconds(10), maximumDelay: .milliseconds(25)))
        #expect([fast.nextDelay(), fast.nextDelay(), fast.nextDelay()] == [.milliseconds(10), .milliseconds(20), .milliseconds(25)])
    }
}

#if canImport(Glibc)
import Glibc
#endif
