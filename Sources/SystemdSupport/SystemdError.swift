/// A failure talking to systemd (notification socket, journal socket, passed descriptors).
public struct SystemdError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure, stable across releases.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidEnvironment
            case socketFailed
            case sendFailed
            case tooLarge
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// A systemd environment variable (`LISTEN_FDS`, `NOTIFY_SOCKET`, …) holds a bad value.
        public static let invalidEnvironment = Code(.invalidEnvironment)
        /// A socket could not be created or addressed.
        public static let socketFailed = Code(.socketFailed)
        /// A datagram could not be sent.
        public static let sendFailed = Code(.sendFailed)
        /// A datagram or value is larger than allowed.
        public static let tooLarge = Code(.tooLarge)

        public var description: String {
            switch value {
            case .invalidEnvironment: return "invalid_environment"
            case .socketFailed: return "socket_failed"
            case .sendFailed: return "send_failed"
            case .tooLarge: return "too_large"
            }
        }
    }

    /// The kind of failure.
    public var code: Code
    /// What went wrong, naming the variable or path involved.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "systemd: \(code): \(message)" }
}
