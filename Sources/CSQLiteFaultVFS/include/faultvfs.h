#ifndef STREAMD_FAULT_VFS_H
#define STREAMD_FAULT_VFS_H

/* A SQLite VFS that wraps the default (unix) VFS to inject I/O faults and power cuts in tests.
 * Every function is thread-safe; the state is guarded by one mutex. */

typedef struct streamd_fault_vfs streamd_fault_vfs;

/* Registers a new VFS named `name` (copied; at most 63 bytes). Returns NULL on failure. */
streamd_fault_vfs *streamd_fault_vfs_create(const char *name);
/* Unregisters and frees the VFS. No connection may still use it. */
void streamd_fault_vfs_destroy(streamd_fault_vfs *vfs);

/* Fails the nth xWrite from now (1 = the next one) with `code`; 0 disarms. */
void streamd_fault_vfs_fail_write(streamd_fault_vfs *vfs, int nth, int code);
/* Fails the nth xSync from now (1 = the next one) with `code`; 0 disarms. */
void streamd_fault_vfs_fail_sync(streamd_fault_vfs *vfs, int nth, int code);
/* Cuts the power at the nth xSync from now: before it (the sync fails and its data is lost) or,
 * when `after` is non-zero, just after it succeeded. `tear` keeps a prefix of the last unsynced
 * write whose length is derived from `seed`. */
void streamd_fault_vfs_power_cut_at_sync(streamd_fault_vfs *vfs, int nth, int after, int tear,
                                         unsigned long long seed);
/* Cuts the power now: every write since each file's last successful xSync is undone (a prefix of
 * the last write may survive if `tear`), then every later write, truncate, sync and delete fails.
 * Returns the number of writes and truncates undone, or -1 if a file could not be restored. */
int streamd_fault_vfs_power_cut(streamd_fault_vfs *vfs, int tear, unsigned long long seed);
/* Non-zero once the power was cut. */
int streamd_fault_vfs_is_dead(streamd_fault_vfs *vfs);
/* Counts of xWrite and xSync calls seen so far. */
long long streamd_fault_vfs_write_count(streamd_fault_vfs *vfs);
long long streamd_fault_vfs_sync_count(streamd_fault_vfs *vfs);

#endif
