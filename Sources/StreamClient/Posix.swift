#if canImport(Glibc)
import Glibc
#endif

/// The real user id of this process.
func currentUserID() -> UInt32 { UInt32(getuid()) }
