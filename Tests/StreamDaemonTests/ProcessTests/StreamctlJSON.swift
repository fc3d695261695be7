import Foundation

/// `streamctl … --json` for one stream.
struct CtlStreamInfo: Decodable, Sendable {
    var name: String
    var role: String
    var state: String
    var bytesWritten: UInt64
    var bytesAcked: UInt64
    var bytesReceived: UInt64
    var bytesConsumed: UInt64
    var readable: UInt64
    var writeBuffered: UInt64
    var writeClosed: Bool
    var peerClosed: Bool
    var reason: String?
}

/// `streamctl open NAME --json`.
struct CtlCreated: Decodable, Sendable {
    var stream: CtlStreamInfo
    var address: String
}

/// `streamctl status --json` (the daemon).
struct CtlDaemonStatus: Decodable, Sendable {
    var version: String
    var kpclientd: String
    var kpclientdConnected: Bool
    var streams: UInt64
    var active: UInt64
    var damaged: UInt64
    var connections: UInt64
}

/// `streamctl send --json`.
struct CtlSent: Decodable, Sendable {
    var sent: UInt64
    var offset: UInt64
}

/// Decodes `--json` output into `T`, naming the text when it does not parse.
func decodeJSON<T: Decodable>(_ type: T.Type, _ result: CommandResult) throws -> T {
    do {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(result.stdout.utf8))
    } catch {
        throw ProcessHarnessError(description: "\(T.self) from \(result): \(error)")
    }
}
