/* Fault-injecting SQLite VFS for streamd's store tests.
 *
 * Power-cut model: before each xWrite/xTruncate the wrapper reads the bytes about to be
 * overwritten (undo log) and remembers the file's size at its last successful xSync. A power cut
 * replays the undo log backwards and truncates to that size, restoring exactly the synced content;
 * optionally a prefix of the very last write is then written again (a torn write). Deletes are
 * treated as immediately durable. The -shm file is not tracked: it is memory in a real crash and
 * SQLite rebuilds it from the WAL when the database is next opened. */
#include "faultvfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct Undo {
    sqlite3_int64 offset;
    int length;
    unsigned char *bytes;
} Undo;

struct FaultFile;

typedef struct Track {
    char *path;
    struct FaultFile *open_file; /* NULL once closed */
    int dirty;
    sqlite3_int64 synced_size;
    Undo *undo;
    int count, capacity;
    struct Track *next;
} Track;

typedef struct FaultFile {
    sqlite3_file base;
    struct streamd_fault_vfs *owner;
    Track *track; /* NULL for anonymous temporary files */
    sqlite3_file *real;
} FaultFile;

struct streamd_fault_vfs {
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    pthread_mutex_t lock;
    Track *tracks;
    int fail_write_in, fail_write_code;
    int fail_sync_in, fail_sync_code;
    int cut_sync_in, cut_after, cut_tear;
    unsigned long long cut_seed;
    int dead;
    long long writes, syncs;
    Track *last_track;
    sqlite3_int64 last_offset;
    unsigned char *last_bytes;
    int last_length;
    char name[64];
};

static streamd_fault_vfs *owner_of(sqlite3_file *file) { return ((FaultFile *)file)->owner; }
static sqlite3_file *real_of(sqlite3_file *file) { return ((FaultFile *)file)->real; }

static void clear_undo(Track *t) {
    for (int i = 0; i < t->count; i++) free(t->undo[i].bytes);
    free(t->undo);
    t->undo = NULL;
    t->count = t->capacity = 0;
    t->dirty = 0;
}

static void clear_last_write(streamd_fault_vfs *s) {
    free(s->last_bytes);
    s->last_bytes = NULL;
    s->last_length = 0;
    s->last_track = NULL;
}

static void free_track(streamd_fault_vfs *s, Track *t) {
    Track **link = &s->tracks;
    while (*link && *link != t) link = &(*link)->next;
    if (*link) *link = t->next;
    if (s->last_track == t) clear_last_write(s);
    clear_undo(t);
    free(t->path);
    free(t);
}

static Track *find_track(streamd_fault_vfs *s, const char *path) {
    for (Track *t = s->tracks; t; t = t->next)
        if (strcmp(t->path, path) == 0) return t;
    return NULL;
}

/* Saves the bytes in [offset, offset+length) that exist now, before they are overwritten. */
static int record_undo(FaultFile *f, sqlite3_int64 offset, sqlite3_int64 length) {
    Track *t = f->track;
    sqlite3_int64 size = 0;
    int rc = f->real->pMethods->xFileSize(f->real, &size);
    if (rc != SQLITE_OK) return rc;
    if (!t->dirty) {
        t->dirty = 1;
        t->synced_size = size;
    }
    if (t->count == t->capacity) {
        int capacity = t->capacity ? t->capacity * 2 : 16;
        Undo *grown = realloc(t->undo, (size_t)capacity * sizeof(Undo));
        if (!grown) return SQLITE_IOERR_NOMEM;
        t->undo = grown;
        t->capacity = capacity;
    }
    Undo u = {offset, 0, NULL};
    if (offset < size) {
        sqlite3_int64 keep = size - offset < length ? size - offset : length;
        u.bytes = malloc((size_t)keep);
        if (!u.bytes) return SQLITE_IOERR_NOMEM;
        u.length = (int)keep;
        rc = f->real->pMethods->xRead(f->real, u.bytes, u.length, offset);
        if (rc != SQLITE_OK) {
            free(u.bytes);
            return rc;
        }
    }
    t->undo[t->count++] = u;
    return SQLITE_OK;
}

static int write_raw(sqlite3_file *real, int fd, const void *bytes, int length, sqlite3_int64 offset) {
    if (real) return real->pMethods->xWrite(real, bytes, length, offset);
    return pwrite(fd, bytes, (size_t)length, (off_t)offset) == length ? SQLITE_OK : SQLITE_IOERR_WRITE;
}

static int truncate_raw(sqlite3_file *real, int fd, sqlite3_int64 size) {
    if (real) return real->pMethods->xTruncate(real, size);
    return ftruncate(fd, (off_t)size) == 0 ? SQLITE_OK : SQLITE_IOERR_TRUNCATE;
}

/* Must hold the lock. */
static int power_cut_locked(streamd_fault_vfs *s, int tear, unsigned long long seed) {
    int undone = 0, failed = 0;
    Track *t = s->tracks;
    while (t) {
        Track *next = t->next;
        if (t->dirty) {
            sqlite3_file *real = t->open_file ? t->open_file->real : NULL;
            int fd = -1;
            if (!real) fd = open(t->path, O_RDWR | O_CLOEXEC);
            if (real || fd >= 0) {
                for (int i = t->count - 1; i >= 0; i--) {
                    Undo *u = &t->undo[i];
                    if (u->length > 0 && write_raw(real, fd, u->bytes, u->length, u->offset) != SQLITE_OK) failed = 1;
                }
                if (truncate_raw(real, fd, t->synced_size) != SQLITE_OK) failed = 1;
                if (tear && s->last_track == t && s->last_length > 0) {
                    int keep = (int)(seed % (unsigned long long)s->last_length);
                    if (keep > 0 && write_raw(real, fd, s->last_bytes, keep, s->last_offset) != SQLITE_OK) failed = 1;
                }
                if (fd >= 0) close(fd);
            } else {
                failed = 1;
            }
            undone += t->count;
            clear_undo(t);
        }
        if (!t->open_file) free_track(s, t);
        t = next;
    }
    clear_last_write(s);
    s->dead = 1;
    return failed ? -1 : undone;
}

/* MARK: File methods. */

static int fv_close(sqlite3_file *file) {
    FaultFile *f = (FaultFile *)file;
    streamd_fault_vfs *s = f->owner;
    pthread_mutex_lock(&s->lock);
    if (f->track) {
        f->track->open_file = NULL;
        if (!f->track->dirty) free_track(s, f->track);
        f->track = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    return f->real->pMethods->xClose(f->real);
}

static int fv_read(sqlite3_file *file, void *buffer, int amount, sqlite3_int64 offset) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xRead(real, buffer, amount, offset);
}

static int fv_write(sqlite3_file *file, const void *buffer, int amount, sqlite3_int64 offset) {
    FaultFile *f = (FaultFile *)file;
    streamd_fault_vfs *s = f->owner;
    int rc;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        rc = SQLITE_IOERR_WRITE;
    } else {
        s->writes++;
        if (s->fail_write_in > 0 && --s->fail_write_in == 0) {
            rc = s->fail_write_code;
        } else {
            rc = f->track ? record_undo(f, offset, amount) : SQLITE_OK;
            if (rc == SQLITE_OK && f->track) {
                unsigned char *copy = malloc((size_t)amount);
                if (!copy) {
                    rc = SQLITE_IOERR_NOMEM;
                } else {
                    memcpy(copy, buffer, (size_t)amount);
                    clear_last_write(s);
                    s->last_bytes = copy;
                    s->last_length = amount;
                    s->last_offset = offset;
                    s->last_track = f->track;
                }
            }
            if (rc == SQLITE_OK) rc = f->real->pMethods->xWrite(f->real, buffer, amount, offset);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int fv_truncate(sqlite3_file *file, sqlite3_int64 size) {
    FaultFile *f = (FaultFile *)file;
    streamd_fault_vfs *s = f->owner;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        rc = SQLITE_IOERR_TRUNCATE;
    } else {
        if (f->track) {
            sqlite3_int64 current = 0;
            rc = f->real->pMethods->xFileSize(f->real, &current);
            if (rc == SQLITE_OK) rc = record_undo(f, size, current > size ? current - size : 0);
        }
        if (rc == SQLITE_OK) rc = f->real->pMethods->xTruncate(f->real, size);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int fv_sync(sqlite3_file *file, int flags) {
    FaultFile *f = (FaultFile *)file;
    streamd_fault_vfs *s = f->owner;
    int rc;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        return SQLITE_IOERR_FSYNC;
    }
    s->syncs++;
    if (s->fail_sync_in > 0 && --s->fail_sync_in == 0) {
        rc = s->fail_sync_code;
        pthread_mutex_unlock(&s->lock);
        return rc;
    }
    int cut = s->cut_sync_in > 0 && --s->cut_sync_in == 0;
    if (cut && !s->cut_after) {
        power_cut_locked(s, s->cut_tear, s->cut_seed);
        pthread_mutex_unlock(&s->lock);
        return SQLITE_IOERR_FSYNC;
    }
    rc = f->real->pMethods->xSync(f->real, flags);
    if (rc == SQLITE_OK && f->track) {
        clear_undo(f->track);
        if (s->last_track == f->track) clear_last_write(s);
    }
    if (cut) power_cut_locked(s, s->cut_tear, s->cut_seed);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int fv_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xFileSize(real, size);
}

static int fv_lock(sqlite3_file *file, int level) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xLock(real, level);
}

static int fv_unlock(sqlite3_file *file, int level) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xUnlock(real, level);
}

static int fv_check_reserved_lock(sqlite3_file *file, int *out) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xCheckReservedLock(real, out);
}

static int fv_file_control(sqlite3_file *file, int op, void *arg) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xFileControl(real, op, arg);
}

static int fv_sector_size(sqlite3_file *file) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xSectorSize(real);
}

static int fv_device_characteristics(sqlite3_file *file) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xDeviceCharacteristics(real);
}

static int fv_shm_map(sqlite3_file *file, int region, int size, int extend, void volatile **out) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xShmMap(real, region, size, extend, out);
}

static int fv_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xShmLock(real, offset, n, flags);
}

static void fv_shm_barrier(sqlite3_file *file) {
    sqlite3_file *real = real_of(file);
    real->pMethods->xShmBarrier(real);
}

static int fv_shm_unmap(sqlite3_file *file, int delete_flag) {
    sqlite3_file *real = real_of(file);
    return real->pMethods->xShmUnmap(real, delete_flag);
}

/* Version 2: shared memory for WAL, but no memory-mapped I/O, so every write goes through xWrite. */
static const sqlite3_io_methods fault_io_methods = {
    2,
    fv_close, fv_read, fv_write, fv_truncate, fv_sync, fv_file_size,
    fv_lock, fv_unlock, fv_check_reserved_lock, fv_file_control,
    fv_sector_size, fv_device_characteristics,
    fv_shm_map, fv_shm_lock, fv_shm_barrier, fv_shm_unmap,
    NULL, NULL,
};

/* MARK: VFS methods. */

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags) {
    streamd_fault_vfs *s = (streamd_fault_vfs *)vfs;
    FaultFile *f = (FaultFile *)file;
    memset(f, 0, sizeof *f);
    f->owner = s;
    f->real = (sqlite3_file *)(f + 1);
    memset(f->real, 0, (size_t)s->real->szOsFile);
    int rc = s->real->xOpen(s->real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (f->real->pMethods) f->real->pMethods->xClose(f->real);
        return rc;
    }
    if (name) {
        pthread_mutex_lock(&s->lock);
        Track *t = find_track(s, name);
        if (!t) {
            t = calloc(1, sizeof *t);
            char *path = t ? strdup(name) : NULL;
            if (!path) {
                free(t);
                pthread_mutex_unlock(&s->lock);
                f->real->pMethods->xClose(f->real);
                return SQLITE_NOMEM;
            }
            t->path = path;
            t->next = s->tracks;
            s->tracks = t;
        }
        t->open_file = f;
        f->track = t;
        pthread_mutex_unlock(&s->lock);
    }
    f->base.pMethods = &fault_io_methods;
    return SQLITE_OK;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    streamd_fault_vfs *s = (streamd_fault_vfs *)vfs;
    pthread_mutex_lock(&s->lock);
    if (s->dead) {
        pthread_mutex_unlock(&s->lock);
        return SQLITE_IOERR_DELETE;
    }
    Track *t = find_track(s, name);
    if (t) {
        if (t->open_file) {
            clear_undo(t);
            if (s->last_track == t) clear_last_write(s);
        } else {
            free_track(s, t);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return s->real->xDelete(s->real, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xAccess(real, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int size, char *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xFullPathname(real, name, size, out);
}

static void *fv_dl_open(sqlite3_vfs *vfs, const char *name) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xDlOpen(real, name);
}

static void fv_dl_error(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    real->xDlError(real, size, out);
}

static void (*fv_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xDlSym(real, handle, symbol);
}

static void fv_dl_close(sqlite3_vfs *vfs, void *handle) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    real->xDlClose(real, handle);
}

static int fv_randomness(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xRandomness(real, size, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int microseconds) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xSleep(real, microseconds);
}

static int fv_current_time(sqlite3_vfs *vfs, double *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xCurrentTime(real, out);
}

static int fv_get_last_error(sqlite3_vfs *vfs, int size, char *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xGetLastError ? real->xGetLastError(real, size, out) : 0;
}

static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    sqlite3_vfs *real = ((streamd_fault_vfs *)vfs)->real;
    return real->xCurrentTimeInt64(real, out);
}

/* MARK: Control API. */

streamd_fault_vfs *streamd_fault_vfs_create(const char *name) {
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (!real || real->iVersion < 2 || strlen(name) >= 64) return NULL;
    streamd_fault_vfs *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s);
        return NULL;
    }
    strcpy(s->name, name);
    s->real = real;
    s->vfs.iVersion = 2;
    s->vfs.szOsFile = (int)sizeof(FaultFile) + real->szOsFile;
    s->vfs.mxPathname = real->mxPathname;
    s->vfs.zName = s->name;
    s->vfs.pAppData = s;
    s->vfs.xOpen = fv_open;
    s->vfs.xDelete = fv_delete;
    s->vfs.xAccess = fv_access;
    s->vfs.xFullPathname = fv_full_pathname;
    s->vfs.xDlOpen = fv_dl_open;
    s->vfs.xDlError = fv_dl_error;
    s->vfs.xDlSym = fv_dl_sym;
    s->vfs.xDlClose = fv_dl_close;
    s->vfs.xRandomness = fv_randomness;
    s->vfs.xSleep = fv_sleep;
    s->vfs.xCurrentTime = fv_current_time;
    s->vfs.xGetLastError = fv_get_last_error;
    s->vfs.xCurrentTimeInt64 = fv_current_time_int64;
    if (sqlite3_vfs_register(&s->vfs, 0) != SQLITE_OK) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return NULL;
    }
    return s;
}

void streamd_fault_vfs_destroy(streamd_fault_vfs *s) {
    if (!s) return;
    sqlite3_vfs_unregister(&s->vfs);
    while (s->tracks) free_track(s, s->tracks);
    clear_last_write(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void streamd_fault_vfs_fail_write(streamd_fault_vfs *s, int nth, int code) {
    pthread_mutex_lock(&s->lock);
    s->fail_write_in = nth;
    s->fail_write_code = code;
    pthread_mutex_unlock(&s->lock);
}

void streamd_fault_vfs_fail_sync(streamd_fault_vfs *s, int nth, int code) {
    pthread_mutex_lock(&s->lock);
    s->fail_sync_in = nth;
    s->fail_sync_code = code;
    pthread_mutex_unlock(&s->lock);
}

void streamd_fault_vfs_power_cut_at_sync(streamd_fault_vfs *s, int nth, int after, int tear,
                                         unsigned long long seed) {
    pthread_mutex_lock(&s->lock);
    s->cut_sync_in = nth;
    s->cut_after = after;
    s->cut_tear = tear;
    s->cut_seed = seed;
    pthread_mutex_unlock(&s->lock);
}

int streamd_fault_vfs_power_cut(streamd_fault_vfs *s, int tear, unsigned long long seed) {
    pthread_mutex_lock(&s->lock);
    int undone = power_cut_locked(s, tear, seed);
    pthread_mutex_unlock(&s->lock);
    return undone;
}

int streamd_fault_vfs_is_dead(streamd_fault_vfs *s) {
    pthread_mutex_lock(&s->lock);
    int dead = s->dead;
    pthread_mutex_unlock(&s->lock);
    return dead;
}

long long streamd_fault_vfs_write_count(streamd_fault_vfs *s) {
    pthread_mutex_lock(&s->lock);
    long long n = s->writes;
    pthread_mutex_unlock(&s->lock);
    return n;
}

long long streamd_fault_vfs_sync_count(streamd_fault_vfs *s) {
    pthread_mutex_lock(&s->lock);
    long long n = s->syncs;
    pthread_mutex_unlock(&s->lock);
    return n;
}
