import TOMLKit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension DialAddress {
    /// Parses the text of a `thinclient.toml` file.
    ///
    /// The document must contain only a top-level `[Dial]` table holding exactly one of
    /// `[Dial.Tcp]` (`Address = "host:port"`, optional `Network = "tcp" | "tcp4" | "tcp6"`)
    /// or `[Dial.Unix]` (`Address = "/path"` or `"@abstract-name"`). Any other key, at any
    /// level, is rejected, including the `[SphinxGeometry]` and `[PigeonholeGeometry]`
    /// tables of older clients: kpclientd now sends both geometries itself.
    public init(thinClientTOML text: String) throws(ThinClientError) {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ThinClientError(
                .invalidConfiguration,
                "thinclient.toml is not valid TOML (\(error.source.begin.debugDescription)): \(error.description)"
            )
        } catch {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml is not valid TOML")
        }
        for key in root.keys where key != "Dial" {
            if key == "SphinxGeometry" || key == "PigeonholeGeometry" {
                throw ThinClientError(
                    .invalidConfiguration,
                    "thinclient.toml: [\(key)] is no longer allowed; kpclientd sends the geometry at connection time"
                )
            }
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: unknown top-level key \"\(key)\" (only [Dial] is allowed)")
        }
        guard let dialValue = root["Dial"] else {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: missing [Dial] table")
        }
        guard let dial = dialValue.table else {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: Dial must be a table")
        }
        let transports = dial.keys
        guard transports.count == 1, let transport = transports.first else {
            let found = transports.isEmpty ? "none" : transports.sorted().joined(separator: ", ")
            throw ThinClientError(
                .invalidConfiguration,
                "thinclient.toml: [Dial] must contain exactly one of [Dial.Tcp] or [Dial.Unix] (found: \(found))"
            )
        }
        guard let table = dial[transport]?.table else {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: Dial.\(transport) must be a table")
        }
        switch transport {
        case "Tcp":
            try Self.rejectUnknownKeys(in: table, allowed: ["Address", "Network"], section: "Dial.Tcp")
            let address = try Self.requiredString("Address", in: table, section: "Dial.Tcp")
            var network = TCPNetwork.tcp
            if let networkValue = table["Network"] {
                guard let text = networkValue.string, let parsed = TCPNetwork(rawValue: text) else {
                    throw ThinClientError(
                        .invalidConfiguration,
                        "thinclient.toml: [Dial.Tcp] Network must be \"tcp\", \"tcp4\" or \"tcp6\""
                    )
                }
                network = parsed
            }
            self = try .tcp(address: address, network: network)
        case "Unix":
            try Self.rejectUnknownKeys(in: table, allowed: ["Address"], section: "Dial.Unix")
            self = try .unix(address: try Self.requiredString("Address", in: table, section: "Dial.Unix"))
        case "Ws":
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: [Dial.Ws] (websocket) is not supported by this client")
        default:
            throw ThinClientError(
                .invalidConfiguration,
                "thinclient.toml: unknown transport [Dial.\(transport)] (expected Tcp or Unix)"
            )
        }
    }

    /// Reads and parses a `thinclient.toml` file; see ``init(thinClientTOML:)``.
    public init(thinClientTOMLFile path: String) throws(ThinClientError) {
        self = try DialAddress(thinClientTOML: try readSmallTextFile(path))
    }

    private static func rejectUnknownKeys(in table: TOMLTable, allowed: Set<String>, section: String) throws(ThinClientError) {
        for key in table.keys.sorted() where !allowed.contains(key) {
            throw ThinClientError(
                .invalidConfiguration,
                "thinclient.toml: unknown key \"\(key)\" in [\(section)] (allowed: \(allowed.sorted().joined(separator: ", ")))"
            )
        }
    }

    private static func requiredString(_ key: String, in table: TOMLTable, section: String) throws(ThinClientError) -> String {
        guard let value = table[key] else {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: [\(section)] is missing \(key)")
        }
        guard let text = value.string else {
            throw ThinClientError(.invalidConfiguration, "thinclient.toml: [\(section)] \(key) must be a string")
        }
        return text
    }
}

extension ThinClientConfiguration {
    /// Creates a configuration from the text of a `thinclient.toml` file, with default bounds.
    public init(thinClientTOML text: String) throws(ThinClientError) {
        self.init(dial: try DialAddress(thinClientTOML: text))
    }

    /// Creates a configuration from a `thinclient.toml` file, with default bounds.
    public init(thinClientTOMLFile path: String) throws(ThinClientError) {
        self.init(dial: try DialAddress(thinClientTOMLFile: path))
    }
}

/// The largest configuration file read.
private let maxConfigurationFileSize = 1 << 20

/// Reads a small UTF-8 text file without Foundation.
private func readSmallTextFile(_ path: String) throws(ThinClientError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        throw ThinClientError(.invalidConfiguration, "cannot open \(path) (errno \(errno))")
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 16 * 1024)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { continue }
            throw ThinClientError(.invalidConfiguration, "cannot read \(path) (errno \(errno))")
        }
        if count == 0 { break }
        bytes.append(contentsOf: chunk[0..<count])
        guard bytes.count <= maxConfigurationFileSize else {
            throw ThinClientError(.invalidConfiguration, "\(path) is larger than \(maxConfigurationFileSize) bytes")
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
