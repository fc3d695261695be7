#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// The simulator could not listen on its address.
///
/// The message names the address and says the cause in words, e.g.
/// `cannot listen on tcp:127.0.0.1:64331: the address is already in use (another kpclientd or
/// kpclientd-sim is probably running there)`.
public struct SimListenError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable { case addressInUse, permissionDenied, addressNotAvailable, other }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }
        /// Something else listens on the address (EADDRINUSE).
        public static let addressInUse = Code(.addressInUse)
        /// The process may not bind there (EACCES, EPERM: a privileged port or a protected directory).
        public static let permissionDenied = Code(.permissionDenied)
        /// The host is not an address of this machine, or the directory does not exist.
        public static let addressNotAvailable = Code(.addressNotAvailable)
        /// Any other failure.
        public static let other = Code(.other)
        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// The address that could not be bound, as given (`tcp:HOST:PORT`, `unix:PATH`, `@name`).
    public var address: String
    /// The cause in words.
    public var message: String

    /// Creates the error.
    public init(_ code: Code, address: String, message: String) {
        self.code = code
        self.address = address
        self.message = message
    }

    public var description: String { "cannot listen on \(address): \(message)" }

    /// Classifies a bind failure by its errno.
    static func from(errno code: Int32, address: String) -> SimListenError {
        let words = String(cString: strerror(code)).lowercased()
        switch code {
        case EADDRINUSE:
            return SimListenError(.addressInUse, address: address, message: "the address is already in use (is another kpclientd or kpclientd-sim running there?)")
        case EACCES, EPERM:
            return SimListenError(.permissionDenied, address: address, message: "permission denied (\(words))")
        case EADDRNOTAVAIL, ENOENT, ENOTDIR:
            return SimListenError(.addressNotAvailable, address: address, message: "the address is not available on this machine (\(words))")
        default:
            return SimListenError(.other, address: address, message: words)
        }
    }

    /// Wraps any error thrown while binding `address`.
    static func wrapping(_ error: any Error, address: String) -> SimListenError {
        if let error = error as? SimListenError { return error }
        if let io = error as? IOError { return from(errno: io.errnoCode, address: address) }
        return SimListenError(.other, address: address, message: "\(error)")
    }
}
