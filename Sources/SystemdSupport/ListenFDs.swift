#if canImport(Glibc)
import Glibc
#endif

/// Sockets passed by systemd socket activation (`sd_listen_fds(3)`).
public struct ListenFDs: Sendable, Equatable {
    /// One passed descriptor and its `FileDescriptorName=`.
    public struct Descriptor: Sendable, Equatable {
        /// The descriptor (3 and up).
        public var descriptor: Int32
        /// Its name from `$LISTEN_FDNAMES`, or `"unknown"` as systemd names unnamed ones.
        public var name: String

        /// Creates a descriptor entry.
        public init(descriptor: Int32, name: String) {
            self.descriptor = descriptor
            self.name = name
        }
    }

    /// The first passed descriptor, `SD_LISTEN_FDS_START`.
    public static let firstDescriptor: Int32 = 3
    /// The most descriptors accepted.
    public static let maxDescriptors = 1024

    /// The descriptors, in order.
    public var descriptors: [Descriptor]

    /// No passed descriptors.
    public static let none = ListenFDs(descriptors: [])

    /// Reads `$LISTEN_PID`, `$LISTEN_FDS` and `$LISTEN_FDNAMES` from `environment`.
    ///
    /// Descriptors meant for another process (`$LISTEN_PID` differs) are ignored. Adopted
    /// descriptors get `FD_CLOEXEC`. Does not change the environment; see ``adoptFromProcess()``.
    public static func parse(environment: [String: String], processID: Int32 = getpid(), setCloseOnExec: Bool = true) throws(SystemdError) -> ListenFDs {
        guard let pidText = environment["LISTEN_PID"], let countText = environment["LISTEN_FDS"] else { return .none }
        guard let pid = Int32(pidText), pid > 0 else { throw SystemdError(.invalidEnvironment, "LISTEN_PID is not a process id") }
        guard pid == processID else { return .none }
        guard let count = Int(countText), (0...maxDescriptors).contains(count) else {
            throw SystemdError(.invalidEnvironment, "LISTEN_FDS must be between 0 and \(maxDescriptors)")
        }
        var names: [String] = []
        if let list = environment["LISTEN_FDNAMES"], !list.isEmpty {
            names = list.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard names.count == count else {
                throw SystemdError(.invalidEnvironment, "LISTEN_FDNAMES names \(names.count) descriptors, LISTEN_FDS says \(count)")
            }
        }
        var descriptors: [Descriptor] = []
        descriptors.reserveCapacity(count)
        for index in 0..<count {
            let descriptor = firstDescriptor + Int32(index)
            if setCloseOnExec {
                let flags = fcntl(descriptor, F_GETFD)
                guard flags >= 0 else { throw SystemdError(.invalidEnvironment, "passed descriptor \(descriptor) is not open") }
                _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC)
            }
            descriptors.append(Descriptor(descriptor: descriptor, name: names.isEmpty ? "unknown" : names[index]))
        }
        return ListenFDs(descriptors: descriptors)
    }

    /// Adopts the descriptors passed to this process and unsets the `LISTEN_*` variables, so
    /// that child processes do not see them.
    public static func adoptFromProcess(environment: [String: String]) throws(SystemdError) -> ListenFDs {
        defer {
            unsetenv("LISTEN_PID")
            unsetenv("LISTEN_FDS")
            unsetenv("LISTEN_FDNAMES")
        }
        return try parse(environment: environment)
    }

    /// The descriptor named `name`, else the only descriptor if exactly one was passed.
    public func listener(named name: String) -> Int32? {
        if let match = descriptors.first(where: { $0.name == name }) { return match.descriptor }
        return descriptors.count == 1 ? descriptors[0].descriptor : nil
    }
}
