#if canImport(Glibc)
import Glibc
#endif

/// The real user id of this process.
func currentUserID() -> UInt32 { UInt32(getuid()) }

/// The text of an errno value, for error messages.
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
