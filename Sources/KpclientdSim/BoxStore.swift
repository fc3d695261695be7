#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CBOR
import ThinWire

/// One stored Pigeonhole box.
struct StoredBox: Sendable, Hashable {
    /// The unpadded plaintext; empty for a tombstone.
    var plaintext: [UInt8]
    /// Whether the box holds a tombstone.
    var isTombstone: Bool
}

/// The in-memory Pigeonhole box store shared by every connection.
///
/// Semantics (reference §5): write-once; a byte-identical rewrite succeeds; a different write
/// is BoxAlreadyExists (10); a tombstone overwrites unconditionally; reading an empty box is
/// BoxIDNotFound (1) and a tombstoned one Tombstone (11). Writes must carry a signature that
/// verifies under the stream's public key (otherwise InvalidSignature, 3). The number of boxes
/// is capped (StorageFull, 6).
struct BoxStore: Sendable {
    private(set) var boxes: [[UInt8]: StoredBox] = [:]
    let capacity: Int
    let maxPlaintextLength: Int
    /// Incremented on every change, so persistence can tell when to save.
    private(set) var generation: UInt64 = 0
    /// How long a box lives (`nil`: for ever); an expired box reads as BoxIDNotFound and may be
    /// written again, as after the replicas drop its bucket.
    let ttl: Duration?
    /// When each box was written (kept only with a TTL; boxes loaded from a state file count
    /// as written at load time).
    private var writtenAt: [[UInt8]: ContinuousClock.Instant] = [:]
    /// Reads that found an expired box.
    private(set) var expiredReads = 0
    /// Whether changed boxes are listed for persistence (``takeChanges()``).
    let tracksChanges: Bool
    /// The boxes changed (written, tombstoned, expired) since the last ``takeChanges()``, when
    /// ``tracksChanges``; a box may appear more than once.
    private var changes: [[UInt8]] = []
    /// The plaintext bytes of every stored box, summed.
    private(set) var plaintextBytes = 0

    init(capacity: Int, maxPlaintextLength: Int, ttl: Duration? = nil, tracksChanges: Bool = false) {
        self.capacity = capacity
        self.maxPlaintextLength = maxPlaintextLength
        self.ttl = ttl
        self.tracksChanges = tracksChanges
    }

    /// Counts a change to box `boxID` from `old` to `new`.
    private mutating func changed(_ boxID: [UInt8], from old: StoredBox?, to new: StoredBox?) {
        plaintextBytes += (new?.plaintext.count ?? 0) - (old?.plaintext.count ?? 0)
        generation &+= 1
        if tracksChanges { changes.append(boxID) }
    }

    /// Returns the boxes changed since the last call (see ``tracksChanges``) and forgets them.
    mutating func takeChanges() -> [[UInt8]] {
        defer { changes = [] }
        return changes
    }

    /// The box stored under `boxID` (even if expired, until it is removed).
    func box(_ boxID: [UInt8]) -> StoredBox? { boxes[boxID] }

    /// Removes box `boxID` if it has expired; returns whether it did.
    private mutating func expire(_ boxID: [UInt8], now: ContinuousClock.Instant) -> Bool {
        guard let ttl, let written = writtenAt[boxID], now - written >= ttl else { return false }
        let old = boxes.removeValue(forKey: boxID)
        writtenAt[boxID] = nil
        changed(boxID, from: old, to: nil)
        return true
    }

    /// Removes every expired box (when the store is full).
    private mutating func expireAll(now: ContinuousClock.Instant) {
        guard let ttl else { return }
        for (id, written) in writtenAt where now - written >= ttl {
            let old = boxes.removeValue(forKey: id)
            writtenAt[id] = nil
            changed(id, from: old, to: nil)
        }
    }

    var count: Int { boxes.count }

    /// Applies an opened write envelope, verifying its signature first.
    mutating func apply(_ envelope: OpenedEnvelope) -> ReplicaErrorCode {
        guard envelope.kind == .write else { return .invalidPayload }
        guard envelope.plaintext.count <= maxPlaintextLength else { return .invalidPayload }
        guard envelope.hasValidSignature else { return .invalidSignature }
        return write(boxID: envelope.boxID, box: StoredBox(plaintext: envelope.plaintext, isTombstone: envelope.isTombstone))
    }

    /// Stores `box` under `boxID` with write-once / tombstone semantics (no signature check).
    mutating func write(boxID: [UInt8], box: StoredBox) -> ReplicaErrorCode {
        let now = ContinuousClock.now
        _ = expire(boxID, now: now)
        if let existing = boxes[boxID] {
            if box.isTombstone {
                if !existing.isTombstone {
                    boxes[boxID] = box
                    changed(boxID, from: existing, to: box)
                    if ttl != nil { writtenAt[boxID] = now }
                }
                return .success
            }
            return existing == box ? .success : .boxAlreadyExists
        }
        if boxes.count >= capacity { expireAll(now: now) }
        guard boxes.count < capacity else { return .storageFull }
        boxes[boxID] = box
        if ttl != nil { writtenAt[boxID] = now }
        changed(boxID, from: nil, to: box)
        return .success
    }

    /// Whether box `boxID` holds data or a tombstone now (without counting an expired read).
    func holds(boxID: [UInt8]) -> Bool {
        guard boxes[boxID] != nil else { return false }
        guard let ttl, let written = writtenAt[boxID] else { return true }
        return ContinuousClock.now - written < ttl
    }

    /// Reads a box.
    ///
    /// - Returns: the plaintext and `.success`, or `nil` and BoxIDNotFound or Tombstone.
    mutating func read(boxID: [UInt8]) -> (plaintext: [UInt8]?, code: ReplicaErrorCode) {
        if expire(boxID, now: .now) { expiredReads += 1 }
        guard let box = boxes[boxID] else { return (nil, .boxIDNotFound) }
        return box.isTombstone ? (nil, .tombstone) : (box.plaintext, .success)
    }

    /// Replaces the contents wholesale (used when loading a state file).
    mutating func load(_ loaded: [[UInt8]: StoredBox]) {
        boxes = loaded
        plaintextBytes = loaded.values.reduce(0) { $0 + $1.plaintext.count }
        changes = []
        if ttl != nil {
            let now = ContinuousClock.now
            writtenAt = loaded.mapValues { _ in now }
        }
        generation &+= 1
    }
}

/// An error from loading or saving the `--state` file.
public struct SimStateError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A stable error code.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Backing: String, Hashable, Sendable { case io, tooLarge, invalid }
        private let backing: Backing
        private init(_ backing: Backing) { self.backing = backing }
        /// A file-system operation failed.
        public static let io = Code(.io)
        /// The file exceeds the size the configured capacity allows.
        public static let tooLarge = Code(.tooLarge)
        /// The file is not a valid simulator state file for this geometry.
        public static let invalid = Code(.invalid)
        public var description: String { backing.rawValue }
    }

    /// The error's stable code.
    public var code: Code
    /// A human-readable explanation.
    public var message: String

    init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "kpclientd-sim state error (\(code)): \(message)" }
}

/// Reads and writes the `--state` file.
///
/// Version 2 (written since the state became a log): a CBOR map, the header — `format`
/// ("kpclientd-sim-state"), `version` (2), `envelope_key` (32 bytes) and
/// `max_plaintext_payload_length` — followed by ``StateLog`` records, one per box change. Saves
/// append the changed boxes' records and `fdatasync`; now and then a save compacts instead:
/// it writes the header and one record per stored box to `FILE.tmp`, fsyncs it, renames it over
/// `FILE` and fsyncs the directory. Version 1 (one CBOR map holding every box in `boxes`, an
/// array of `[box id (32), plaintext, tombstone]`) is still read, and compacted into version 2
/// at the first save. Loading rejects files larger than the capacity allows and validates every
/// entry; an append cut short at the end (a crash while saving) is dropped.
enum StateFile {
    static let format = "kpclientd-sim-state"

    struct Contents: Sendable {
        var envelopeKey: [UInt8]
        var boxes: [[UInt8]: StoredBox]
        /// The length of the file's valid part (where the next append goes).
        var logLength = 0
        /// Whether the next save must rewrite the file (version 1, or a torn append at its end).
        var needsCompaction = false
    }

    /// The largest file a load accepts (as for version 1). A compacted file (the header and a
    /// record per box) stays below it at full capacity, and saves append only while the file
    /// stays within it (``StateLog/compactionThreshold(liveLength:limit:)``).
    static func maximumFileSize(capacity: Int, maxPlaintextLength: Int) -> Int {
        4096 + capacity * (maxPlaintextLength + 64)
    }

    /// The version 2 header.
    static func header(envelopeKey: [UInt8], maxPlaintextLength: Int) -> [UInt8] {
        WireCBOR.encode(.textMap([
            ("format", .text(format)),
            ("version", .unsigned(2)),
            ("envelope_key", .bytes(envelopeKey)),
            ("max_plaintext_payload_length", .unsigned(UInt64(maxPlaintextLength))),
        ]))
    }

    /// A compacted version 2 file: the header and one record per box.
    static func encode(_ contents: Contents, maxPlaintextLength: Int) -> [UInt8] {
        var bytes = header(envelopeKey: contents.envelopeKey, maxPlaintextLength: maxPlaintextLength)
        bytes.reserveCapacity(bytes.count + contents.boxes.values.reduce(0) { $0 + StateLog.overhead + $1.plaintext.count })
        for (id, box) in contents.boxes {
            StateLog.appendRecord(boxID: id, box: box, to: &bytes)
        }
        return bytes
    }

    /// Decodes a version 1 or 2 file.
    static func decode(_ bytes: [UInt8], capacity: Int, maxPlaintextLength: Int) throws(SimStateError) -> Contents {
        let value: CBORValue
        let headerLength: Int
        do {
            (value, headerLength) = try CBORDecoder.decodePrefix(bytes, limits: .init(maxDepth: 8, maxItems: capacity * 4 + 64))
        } catch {
            throw SimStateError(.invalid, "not CBOR: \(error.message)")
        }
        let fields = ThinFields(value, context: "state")
        do {
            guard try fields.text("format") == format else {
                throw SimStateError(.invalid, "not a kpclientd-sim state file")
            }
            let version = try fields.uint("version")
            guard version == 1 || version == 2 else {
                throw SimStateError(.invalid, "not a version 1 or 2 kpclientd-sim state file")
            }
            let key = try fields.bytes("envelope_key", length: 32)
            if version == 2 {
                var boxes: [[UInt8]: StoredBox] = [:]
                let ending = try StateLog.replay(bytes, from: headerLength, onto: &boxes, capacity: capacity, maxPlaintextLength: maxPlaintextLength)
                switch ending {
                case .clean:
                    return Contents(envelopeKey: key, boxes: boxes, logLength: bytes.count)
                case .tornTail(let offset):
                    return Contents(envelopeKey: key, boxes: boxes, logLength: offset, needsCompaction: true)
                }
            }
            guard headerLength == bytes.count else {
                throw SimStateError(.invalid, "\(bytes.count - headerLength) bytes follow a version 1 state")
            }
            let entries = try fields.array("boxes")
            guard entries.count <= capacity else {
                throw SimStateError(.invalid, "\(entries.count) boxes exceed the capacity of \(capacity)")
            }
            var boxes: [[UInt8]: StoredBox] = [:]
            boxes.reserveCapacity(entries.count)
            for entry in entries {
                guard let parts = entry.array, parts.count == 3, let id = parts[0].bytes, id.count == 32,
                    let plaintext = parts[1].bytes, let tombstone = parts[2].bool,
                    plaintext.count <= maxPlaintextLength, !(tombstone && !plaintext.isEmpty), boxes[id] == nil
                else { throw SimStateError(.invalid, "malformed box entry (or larger than the geometry allows)") }
                boxes[id] = StoredBox(plaintext: plaintext, isTombstone: tombstone)
            }
            return Contents(envelopeKey: key, boxes: boxes, logLength: bytes.count, needsCompaction: true)
        } catch let error as SimStateError {
            throw error
        } catch {
            throw SimStateError(.invalid, "\(error)")
        }
    }

    /// The system's words for `code` (`strerror`), e.g. "Permission denied".
    static func describe(errno code: Int32) -> String {
        String(cString: strerror(code))
    }

    /// The directory part of `path` (`.` for a bare file name, `/` for a file in the root).
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        let directory = String(path[..<slash])
        return directory.isEmpty ? "/" : directory
    }

    /// What kind of file `mode` describes, in words.
    static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO (named pipe)"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFLNK: return "a symbolic link"
        default: return "not a regular file"
        }
    }

    /// Checks that the file's directory exists and is writable, so that saves can succeed.
    static func checkDirectory(of path: String) throws(SimStateError) {
        let directory = directory(of: path)
        var st = stat()
        guard stat(directory, &st) == 0 else {
            let e = errno
            throw SimStateError(.io, "state file \(path): its directory \(directory) is unusable: \(describe(errno: e))")
        }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw SimStateError(.io, "state file \(path): \(directory) is not a directory")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            let e = errno
            throw SimStateError(.io, "state file \(path): cannot create files in \(directory): \(describe(errno: e))")
        }
    }

    /// Whether the file's directory lets anyone but its owner in (the file holds secrets).
    static func directoryIsShared(of path: String) -> Bool {
        var st = stat()
        guard stat(directory(of: path), &st) == 0 else { return false }
        return st.st_mode & 0o077 != 0
    }

    /// Loads the file, or returns `nil` if it does not exist (its directory must exist and be writable).
    ///
    /// The file is opened without blocking (a FIFO must not hang the start) and must be a regular file.
    static func load(path: String, capacity: Int, maxPlaintextLength: Int) throws(SimStateError) -> Contents? {
        try checkDirectory(of: path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        if fd < 0 {
            let e = errno
            if e == ENOENT { return nil }
            throw SimStateError(.io, "cannot open state file \(path): \(describe(errno: e))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let e = errno
            throw SimStateError(.io, "cannot examine state file \(path): \(describe(errno: e))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw SimStateError(.io, "state file \(path) is \(kind(of: st.st_mode)); it must be a regular file")
        }
        let size = Int(st.st_size)
        let limit = maximumFileSize(capacity: capacity, maxPlaintextLength: maxPlaintextLength)
        guard size <= limit else { throw SimStateError(.tooLarge, "state file \(path) is \(size) bytes; at most \(limit) allowed") }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                let e = errno
                throw SimStateError(.io, "cannot read state file \(path): \(describe(errno: e))")
            }
            guard n > 0 else { throw SimStateError(.io, "state file \(path) shrank while being read") }
            done += n
        }
        do {
            return try decode(bytes, capacity: capacity, maxPlaintextLength: maxPlaintextLength)
        } catch {
            throw SimStateError(error.code, "state file \(path): \(error.message)")
        }
    }

    /// Atomically replaces the file: write a temporary file, fsync, rename, fsync the directory.
    static func save(_ bytes: [UInt8], path: String) throws(SimStateError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SimStateError(.io, "cannot create \(tmp): \(describe(errno: errno))") }
        _ = fchmod(fd, 0o600)  // box plaintext and the envelope key: owner only, even if FILE.tmp existed
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let e = n < 0 ? errno : ENOSPC
                close(fd)
                unlink(tmp)
                throw SimStateError(.io, "cannot write \(tmp): \(describe(errno: e))")
            }
            done += n
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            throw SimStateError(.io, "fsync \(tmp) failed: \(describe(errno: e))")
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw SimStateError(.io, "rename \(tmp) to \(path) failed: \(describe(errno: errno))") }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let dfd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 {
            _ = fsync(dfd)
            close(dfd)
        }
    }
}
