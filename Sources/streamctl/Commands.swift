import ArgumentParser
import IPC
import StreamClient

/// `streamctl open NAME`: create a stream, or join one with --address.
struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a named stream (prints its address on the last line), or join one with --address.")

    @OptionGroup var options: CommonOptions
    @Argument(help: "The stream's local name: 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit.")
    var name: String
    @Option(help: "Join the stream with this address (from the peer's `streamctl open`) instead of creating one.")
    var address: String?
    @Flag(help: "Create a multicast stream (one writer, read-only readers).")
    var multicast = false

    func validate() throws {
        if address != nil && multicast {
            throw ValidationError("--multicast creates a stream; to join a multicast stream, give its read-only --address")
        }
    }

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            if let address {
                let info = try await client.join(name, address: address)
                print(options.json ? JSON.info(info) : "joined \(info.name) as \(info.role.rawValue)")
            } else {
                let (info, address) = try await client.create(name, multicast: multicast)
                if options.json {
                    print(JSON.object([("stream", JSON.info(info)), ("address", JSON.string(address))]))
                } else {
                    print("created \(info.name) as \(info.role.rawValue); give this address to the peer:")
                    print(address)
                }
            }
        }
    }
}

/// `streamctl list`.
struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every stream.")
    @OptionGroup var options: CommonOptions

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            let infos = try await client.list()
            if options.json {
                print(JSON.array(infos.map(JSON.info)))
                return
            }
            var rows = [["NAME", "ROLE", "STATE", "WRITTEN", "ACKED", "RECEIVED", "CONSUMED"]]
            for info in infos {
                rows.append([
                    info.name.rawValue, info.role.rawValue, info.state.rawValue, "\(info.bytesWritten)", "\(info.bytesAcked)",
                    "\(info.bytesReceived)", "\(info.bytesConsumed)",
                ])
            }
            print(Table.render(rows))
        }
    }
}

/// `streamctl status [NAME]`.
struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one stream's state, or the daemon's with no NAME.")
    @OptionGroup var options: CommonOptions
    @Argument(help: "The stream; omit it for the daemon's status.")
    var name: String?
    @Flag(help: "Also print the stream engine's state (unacknowledged frames, reads, timers), for debugging a stream that makes no progress.")
    var engine = false

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            guard let name else {
                let status = try await client.daemonStatus()
                if options.json {
                    print(JSON.daemon(status))
                } else {
                    print("""
                        \(status.version)
                        kpclientd:   \(status.kpclientd) (\(status.kpclientdConnected ? "connected" : "DOWN"))
                        streams:     \(status.streams) (\(status.active) active, \(status.damaged) damaged)
                        connections: \(status.connections)
                        """)
                }
                return
            }
            let info = try await client.status(name)
            if options.json {
                print(JSON.info(info))
            } else {
                var lines = [
                    "name:        \(info.name)", "role:        \(info.role.rawValue)", "state:       \(info.state.rawValue)",
                    "written:     \(info.bytesWritten) bytes (\(info.bytesAcked) acknowledged by the peer, \(info.writeBuffered) buffered)",
                    "received:    \(info.bytesReceived) bytes (\(info.bytesConsumed) consumed, \(info.readable) readable)",
                    "closed:      \(info.writeClosed ? "yes" : "no") (peer: \(info.peerClosed ? "yes" : "no"))",
                ]
                if let reason = info.reason { lines.append("reason:      \(reason)") }
                if engine, let engine = info.engine { lines.append("engine:      \(engine)") }
                print(lines.joined(separator: "\n"))
            }
        }
    }
}

/// `streamctl address NAME`.
struct Address: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a stream's address (a secret: share it only with the peer).")
    @OptionGroup var options: CommonOptions
    @Argument(help: "The stream.")
    var name: String
    @Flag(help: "The read-only address of a multicast stream, for its readers.")
    var readOnly = false

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            let address = try await client.address(name, readOnly: readOnly)
            print(options.json ? JSON.object([("address", JSON.string(address))]) : address)
        }
    }
}

/// `streamctl close NAME`.
struct Close: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Close this end's direction and wait until the peer acknowledged it.")
    @OptionGroup var options: CommonOptions
    @Argument(help: "The stream.")
    var name: String
    @Flag(help: "Return once the close is durable, without waiting for the peer.")
    var noWait = false

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            try await client.closeStream(name, wait: !noWait)
            if options.json { print(JSON.object([("closed", "true")])) }
        }
    }
}

/// `streamctl remove NAME`.
struct Remove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a stream and its stored state.")
    @OptionGroup var options: CommonOptions
    @Argument(help: "The stream.")
    var name: String

    func run() async throws {
        try await reporting {
            let client = try await options.connect()
            defer { Task { await client.close() } }
            try await client.remove(name)
            if options.json { print(JSON.object([("removed", "true")])) }
        }
    }
}

/// Renders aligned text tables.
enum Table {
    static func render(_ rows: [[String]]) -> String {
        guard let header = rows.first else { return "" }
        let widths = (0..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

/// Minimal JSON output (objects, arrays, strings, numbers, booleans).
enum JSON {
    static func string(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func object(_ pairs: [(String, String)]) -> String {
        "{" + pairs.map { string($0.0) + ":" + $0.1 }.joined(separator: ",") + "}"
    }

    static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }

    static func info(_ info: IPCStreamInfo) -> String {
        var pairs: [(String, String)] = [
            ("name", string(info.name.rawValue)), ("role", string(info.role.rawValue)), ("state", string(info.state.rawValue)),
            ("bytes_written", "\(info.bytesWritten)"), ("bytes_acked", "\(info.bytesAcked)"),
            ("bytes_received", "\(info.bytesReceived)"), ("bytes_consumed", "\(info.bytesConsumed)"),
            ("readable", "\(info.readable)"), ("write_buffered", "\(info.writeBuffered)"),
            ("write_closed", "\(info.writeClosed)"), ("peer_closed", "\(info.peerClosed)"),
        ]
        if let reason = info.reason { pairs.append(("reason", string(reason))) }
        if let engine = info.engine { pairs.append(("engine", string(engine))) }
        return object(pairs)
    }

    static func daemon(_ status: IPCDaemonStatus) -> String {
        object([
            ("version", string(status.version)), ("kpclientd", string(status.kpclientd)),
            ("kpclientd_connected", "\(status.kpclientdConnected)"), ("streams", "\(status.streams)"),
            ("active", "\(status.active)"), ("damaged", "\(status.damaged)"), ("connections", "\(status.connections)"),
        ])
    }
}
