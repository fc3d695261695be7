import CSQLite
import CSQLiteFaultVFS

/// A test seam that routes a store's file I/O through a fault-injecting SQLite VFS wrapping the
/// default unix VFS: it fails chosen writes or fsyncs, and simulates power cuts.
///
/// Power-cut model: before each write the VFS saves the bytes it overwrites (an undo log per file,
/// cleared by a successful fsync of that file). A power cut replays the undo logs backwards and
/// truncates each file to its size at its last fsync, so exactly the synced content remains;
/// optionally a prefix of the very last unsynced write survives (a torn write). After a cut every
/// write, truncate, fsync and delete fails, as if the process had died: close the database and
/// reopen it (without faults, or with a new injector) to observe what survived. Deletes are treated
/// as immediately durable; the `-shm` file is not tracked (SQLite rebuilds it from the WAL).
public final class StoreFaultInjector: @unchecked Sendable {
    /// How an injected I/O failure reports itself to SQLite.
    public enum IOFault: Sendable {
        /// `SQLITE_IOERR_WRITE` for writes, `SQLITE_IOERR_FSYNC` for fsyncs.
        case ioError
        /// `SQLITE_FULL`.
        case diskFull
    }

    /// When a power cut armed at an fsync happens.
    public enum PowerCutTiming: Sendable {
        /// Before the fsync: it fails and the data it would have made durable is lost.
        case beforeSync
        /// Right after the fsync succeeded: its data survives, everything later is lost.
        case afterSync
    }

    /// The unique name under which the VFS is registered with SQLite.
    public let vfsName: String
    private let vfs: OpaquePointer

    /// Registers a new fault VFS under a unique name.
    public init() throws(StreamStoreError) {
        let name = "streamd-fault-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))"
        guard let vfs = streamd_fault_vfs_create(name) else {
            throw StreamStoreError(.internalError, "cannot register the fault VFS")
        }
        self.vfsName = name
        self.vfs = vfs
    }

    deinit { streamd_fault_vfs_destroy(vfs) }

    /// Fails the `nth` write from now (1 = the next one); 0 disarms.
    public func failWrite(nth: Int = 1, with fault: IOFault = .ioError) {
        streamd_fault_vfs_fail_write(vfs, Int32(clamping: nth), fault == .ioError ? ioErrWrite : SQLITE_FULL)
    }

    /// Fails the `nth` fsync from now (1 = the next one); 0 disarms.
    public func failSync(nth: Int = 1, with fault: IOFault = .ioError) {
        streamd_fault_vfs_fail_sync(vfs, Int32(clamping: nth), fault == .ioError ? ioErrFsync : SQLITE_FULL)
    }

    /// Cuts the power at the `nth` fsync from now (1 = the next one), before or after it; 0 disarms.
    public func cutPowerAtSync(
        nth: Int = 1, timing: PowerCutTiming, tearLastWrite: Bool = false, seed: UInt64 = .random(in: 0...UInt64.max)
    ) {
        streamd_fault_vfs_power_cut_at_sync(
            vfs, Int32(clamping: nth), timing == .afterSync ? 1 : 0, tearLastWrite ? 1 : 0, seed)
    }

    /// Cuts the power now: undoes every write not yet covered by an fsync.
    ///
    /// - Returns: the number of writes and truncates undone.
    /// - Throws: `.ioFailure` if a file could not be restored.
    @discardableResult
    public func simulatePowerCut(
        tearLastWrite: Bool = false, seed: UInt64 = .random(in: 0...UInt64.max)
    ) throws(StreamStoreError) -> Int {
        let undone = streamd_fault_vfs_power_cut(vfs, tearLastWrite ? 1 : 0, seed)
        guard undone >= 0 else { throw StreamStoreError(.ioFailure, "the power cut could not restore every file") }
        return Int(undone)
    }

    /// True once the power was cut.
    public var isPowerCut: Bool { streamd_fault_vfs_is_dead(vfs) != 0 }
    /// Writes seen so far.
    public var writeCount: Int { Int(streamd_fault_vfs_write_count(vfs)) }
    /// Fsyncs seen so far.
    public var syncCount: Int { Int(streamd_fault_vfs_sync_count(vfs)) }

    private var ioErrWrite: Int32 { SQLITE_IOERR | (3 << 8) }
    private var ioErrFsync: Int32 { SQLITE_IOERR | (4 << 8) }
}
