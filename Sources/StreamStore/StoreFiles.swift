#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system preparation: a private directory and owner-only database files.
enum StoreFiles {
    /// Creates `directory` (and missing parents) with mode 0700, or checks that an existing one is a
    /// directory owned by this user with no group or other permissions. An existing directory with
    /// wider permissions is refused rather than changed, since it may be shared with something else.
    static func prepareDirectory(_ directory: String) throws(StreamStoreError) {
        guard !directory.isEmpty else { throw StreamStoreError(.cannotOpen, "the store directory is empty") }
        var info = stat()
        if stat(directory, &info) != 0 {
            let code = errno
            guard code == ENOENT else { throw posixError(.cannotOpen, "cannot inspect directory", directory, code) }
            let parent = parentPath(directory)
            if parent != directory, stat(parent, &info) != 0 { try prepareDirectory(parent) }
            if mkdir(directory, 0o700) != 0 && errno != EEXIST {
                throw posixError(.cannotOpen, "cannot create directory", directory, errno)
            }
            if chmod(directory, 0o700) != 0 { throw posixError(.permissions, "cannot chmod directory", directory, errno) }
            guard stat(directory, &info) == 0 else { throw posixError(.cannotOpen, "cannot inspect directory", directory, errno) }
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw StreamStoreError(.cannotOpen, "\(directory) is not a directory")
        }
        guard info.st_uid == geteuid() else {
            throw StreamStoreError(.permissions, "directory \(directory) is owned by uid \(info.st_uid), not by this user")
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else {
            throw StreamStoreError(
                .permissions,
                "directory \(directory) has mode 0\(String(mode, radix: 8)); it must be 0700 because the store holds stream keys (chmod 700 it, or StateDirectoryMode=0700)"
            )
        }
    }

    /// Creates the file with mode 0600 if missing, or narrows an existing one to 0600; refuses
    /// anything that is not a regular file owned by this user. `mustExist` skips missing files.
    static func secureFile(_ path: String, create: Bool) throws(StreamStoreError) {
        var flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW
        if create { flags |= O_CREAT }
        let fd = open(path, flags, 0o600)
        if fd < 0 {
            let code = errno
            if !create && code == ENOENT { return }
            throw posixError(.cannotOpen, "cannot open file", path, code)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw posixError(.cannotOpen, "cannot inspect file", path, errno) }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw StreamStoreError(.cannotOpen, "\(path) is not a regular file") }
        guard info.st_uid == geteuid() else {
            throw StreamStoreError(.permissions, "file \(path) is owned by uid \(info.st_uid), not by this user")
        }
        if info.st_mode & 0o777 != 0o600, fchmod(fd, 0o600) != 0 {
            throw posixError(.permissions, "cannot chmod file", path, errno)
        }
    }

    /// The mode bits (0o777) of a path, or nil if it does not exist.
    static func mode(of path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode & 0o777)
    }

    private static func parentPath(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    private static func posixError(
        _ code: StreamStoreError.Code, _ what: String, _ path: String, _ number: Int32
    ) -> StreamStoreError {
        StreamStoreError(code, "\(what) \(path): \(String(cString: strerror(number)))")
    }
}
