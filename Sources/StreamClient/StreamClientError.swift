import IPC

/// An error talking to streamd that is not the daemon's own answer.
///
/// The daemon's refusals arrive as ``IPC/IPCError``; this covers reaching it at all.
public struct StreamClientError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable {
            case notRunning, connectionLost, protocolViolation
        }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }

        /// Nothing listens on the socket (streamd is not running, or another path is meant).
        public static let notRunning = Code(.notRunning)
        /// The connection closed before the reply arrived.
        public static let connectionLost = Code(.connectionLost)
        /// The daemon sent something this client cannot understand.
        public static let protocolViolation = Code(.protocolViolation)

        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// What happened, with the socket path where it helps.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
