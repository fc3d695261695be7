#if canImport(Glibc)
import Glibc
#endif

/// An exclusive lock on the state directory, so two daemons never share one database.
///
/// The lock is `flock` on `streamd.lock` in the directory; the kernel releases it when the
/// process ends, however it ends, so a crash leaves no stale lock.
final class StateLock: Sendable {
    private let descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    /// Takes the lock, or fails naming the directory if another process holds it.
    static func acquire(directory: String) throws(StreamDaemon.Failure) -> StateLock {
        let path = directory + "/streamd.lock"
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            throw StreamDaemon.Failure(description: "cannot open \(path): \(errnoText(errno))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(descriptor)
            if code == EWOULDBLOCK {
                throw StreamDaemon.Failure(description: "another streamd is using the state directory \(directory)")
            }
            throw StreamDaemon.Failure(description: "cannot lock \(path): \(errnoText(code))")
        }
        return StateLock(descriptor: descriptor)
    }

    deinit {
        close(descriptor)
    }
}
