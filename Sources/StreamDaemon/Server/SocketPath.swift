#if canImport(Glibc)
import Glibc
#endif

/// Prepares the app socket's path: a private directory, and no live daemon already there.
enum SocketPath {
    /// An error preparing the socket path; the message names the path.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Creates the socket's directory (0700) if needed and clears a stale socket file.
    ///
    /// - Throws: if another process answers on the socket, or the path is not a socket.
    static func prepare(_ path: String) throws(Failure) {
        let directory = parent(of: path)
        try makePrivateDirectory(directory)
        var info = stat()
        guard lstat(path, &info) == 0 else {
            if errno == ENOENT { return }
            throw Failure(description: "cannot inspect \(path): \(errnoText(errno))")
        }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else {
            throw Failure(description: "\(path) exists and is not a socket; remove it or choose another --socket")
        }
        if isAnswering(path) {
            throw Failure(description: "another streamd is already answering on \(path)")
        }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw Failure(description: "cannot remove the stale socket \(path): \(errnoText(errno))")
        }
    }

    /// Creates `directory` and its parents; the last one gets mode 0700 and must be ours.
    static func makePrivateDirectory(_ directory: String) throws(Failure) {
        var info = stat()
        if stat(directory, &info) != 0 {
            guard errno == ENOENT else { throw Failure(description: "cannot inspect \(directory): \(errnoText(errno))") }
            let above = parent(of: directory)
            if above != directory, above != "/" {
                var aboveInfo = stat()
                if stat(above, &aboveInfo) != 0 { try makeDirectories(above) }
            }
            guard mkdir(directory, 0o700) == 0 || errno == EEXIST else {
                throw Failure(description: "cannot create \(directory): \(errnoText(errno))")
            }
            guard stat(directory, &info) == 0 else { throw Failure(description: "cannot inspect \(directory): \(errnoText(errno))") }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw Failure(description: "\(directory) is not a directory") }
        guard info.st_uid == getuid() else {
            throw Failure(description: "\(directory) belongs to another user (uid \(info.st_uid)); it must be private to streamd's user")
        }
        if info.st_mode & 0o077 != 0 {
            guard chmod(directory, 0o700) == 0 else { throw Failure(description: "cannot make \(directory) private (0700): \(errnoText(errno))") }
        }
    }

    private static func makeDirectories(_ directory: String) throws(Failure) {
        let above = parent(of: directory)
        if above != directory, above != "/" {
            var info = stat()
            if stat(above, &info) != 0 { try makeDirectories(above) }
        }
        guard mkdir(directory, 0o755) == 0 || errno == EEXIST else {
            throw Failure(description: "cannot create \(directory): \(errnoText(errno))")
        }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let head = String(path[..<slash])
        return head.isEmpty ? "/" : head
    }

    /// Whether a process accepts connections on the socket at `path`.
    static func isAnswering(_ path: String) -> Bool {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0
    }
}
