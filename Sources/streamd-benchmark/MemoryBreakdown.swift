#if canImport(Glibc)
import Glibc
#endif

/// Where this process's resident memory is, by kind of mapping (`/proc/self/smaps`), with
/// glibc malloc's and SQLite's own accounting: what `startup` prints to separate fixed costs
/// from per-stream ones.
struct MemoryBreakdown {
    /// Resident KiB per kind of mapping (see ``kind(of:previous:)``).
    var residentKiB: [String: Int] = [:]
    /// Per malloc arena: bytes glibc holds from the system, and of them free (`malloc_info`).
    var arenas: [(system: Int, free: Int)] = []
    /// Bytes in blocks malloc got with `mmap` (`malloc_info`'s total of type mmap).
    var mmappedBlocks = 0
    /// Bytes SQLite has allocated (`sqlite3_status64(SQLITE_STATUS_MEMORY_USED)`), -1 if unknown.
    var sqliteBytes = -1
    /// Bytes of SQLite's page cache that came from malloc (`SQLITE_STATUS_PAGECACHE_OVERFLOW`).
    var sqlitePageCacheBytes = -1
    /// Threads in this process, by name.
    var threads: [String: Int] = [:]

    /// The kinds in a fixed order for printing.
    static let kinds = [
        "main heap [heap]", "malloc arenas", "thread stacks", "anonymous, other", "executable", "shared libraries",
        "SQLite -shm", "other files", "kernel ([vdso] etc.)",
    ]

    /// Takes a snapshot now (after `malloc_trim(0)`, as `residentBytes()` does).
    static func now() -> MemoryBreakdown {
        trimHeap()
        var breakdown = MemoryBreakdown()
        breakdown.readMappings()
        breakdown.readMallocInfo()
        breakdown.readSQLite()
        breakdown.readThreads()
        return breakdown
    }

    /// Prints each kind's resident KiB before → after, and the change per stream.
    static func printDifference(from before: MemoryBreakdown, to after: MemoryBreakdown, streams: Int) {
        print("resident memory by mapping kind, KiB (before → after creating, change, per stream):")
        for kind in kinds {
            let old = before.residentKiB[kind] ?? 0
            let new = after.residentKiB[kind] ?? 0
            print("  \(kind): \(old) → \(new) (\(signed(new - old)); \(format(Double(new - old) / Double(max(streams, 1)), 2))/stream)")
        }
        func arenaLine(_ breakdown: MemoryBreakdown) -> String {
            breakdown.arenas.map { "\($0.system / 1024)/\($0.free / 1024)" }.joined(separator: " ")
        }
        print("  malloc arenas, KiB from the system / of which free: before [\(arenaLine(before))], after [\(arenaLine(after))]")
        let usedBefore = before.arenas.reduce(0) { $0 + $1.system - $1.free }
        let usedAfter = after.arenas.reduce(0) { $0 + $1.system - $1.free }
        let freeBefore = before.arenas.reduce(0) { $0 + $1.free }
        let freeAfter = after.arenas.reduce(0) { $0 + $1.free }
        print("  malloc in use \(usedBefore / 1024) → \(usedAfter / 1024) KiB (\(signed((usedAfter - usedBefore) / 1024))), free in arenas \(freeBefore / 1024) → \(freeAfter / 1024) KiB, mmapped blocks \(before.mmappedBlocks / 1024) → \(after.mmappedBlocks / 1024) KiB")
        print("  SQLite allocated \(before.sqliteBytes / 1024) → \(after.sqliteBytes / 1024) KiB (page cache \(before.sqlitePageCacheBytes / 1024) → \(after.sqlitePageCacheBytes / 1024) KiB)")
        let names = Set(before.threads.keys).union(after.threads.keys).sorted()
        print("  threads: " + names.map { "\($0) \(before.threads[$0] ?? 0)→\(after.threads[$0] ?? 0)" }.joined(separator: ", "))
    }

    static func signed(_ value: Int) -> String { value >= 0 ? "+\(value)" : "\(value)" }

    // MARK: - /proc/self/smaps

    private mutating func readMappings() {
        guard let text = readWholeFile("/proc/self/smaps") else { return }
        let executable = readLink("/proc/self/exe")
        var kind: String?
        var previous: (end: UInt, perms: Substring, anonymous: Bool)?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.contains("-"), !first.hasSuffix(":"), fields.count >= 5 {
                let bounds = first.split(separator: "-")
                guard bounds.count == 2, let start = UInt(bounds[0], radix: 16), let end = UInt(bounds[1], radix: 16) else { continue }
                let perms = fields[1]
                let path = fields.count >= 6 ? fields[5...].joined(separator: " ") : ""
                kind = Self.kind(
                    start: start, end: end, perms: perms, path: path, executable: executable,
                    guardBelow: previous.map { $0.end == start && $0.perms.hasPrefix("---") && $0.anonymous } ?? false)
                previous = (end, perms, path.isEmpty)
            } else if first == "Rss:", fields.count >= 2, let kib = Int(fields[1]), let kind {
                residentKiB[kind, default: 0] += kib
            }
        }
    }

    /// Classifies one mapping: glibc's non-main arenas are anonymous read-write mappings at
    /// 64 MiB-aligned addresses (`HEAP_MAX_SIZE`); thread stacks are anonymous read-write
    /// mappings right above an inaccessible guard mapping.
    private static func kind(start: UInt, end: UInt, perms: Substring, path: String, executable: String, guardBelow: Bool) -> String {
        if path == "[heap]" { return "main heap [heap]" }
        if path == "[stack]" { return "thread stacks" }
        if path.hasPrefix("[") { return "kernel ([vdso] etc.)" }
        if !path.isEmpty {
            if path.hasSuffix("-shm") { return "SQLite -shm" }
            if path == executable { return "executable" }
            if path.contains(".so") { return "shared libraries" }
            return "other files"
        }
        let arenaAlignment: UInt = 64 << 20
        if perms.hasPrefix("rw"), start % arenaAlignment == 0 { return "malloc arenas" }
        if perms.hasPrefix("rw"), guardBelow { return "thread stacks" }
        return "anonymous, other"
    }

    // MARK: - malloc_info

    private mutating func readMallocInfo() {
        typealias Info = @convention(c) (Int32, UnsafeMutablePointer<FILE>?) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_info") else { return }
        var buffer: UnsafeMutablePointer<CChar>?
        var size = 0
        guard let stream = open_memstream(&buffer, &size) else { return }
        _ = unsafeBitCast(symbol, to: Info.self)(0, stream)
        fclose(stream)
        guard let buffer else { return }
        let xml = String(cString: buffer)
        free(buffer)
        // Per <heap>: its totals of free chunks (fast, rest) and <system type="current">.
        var inHeap = false
        var free = 0
        for line in xml.split(separator: "\n") {
            if line.hasPrefix("<heap ") {
                inHeap = true
                free = 0
            } else if line.hasPrefix("</heap>") {
                inHeap = false
            } else if line.hasPrefix("<total "), let bytes = Self.attribute("size", in: line) {
                if inHeap, line.contains("type=\"fast\"") || line.contains("type=\"rest\"") { free += bytes }
                if !inHeap, line.contains("type=\"mmap\"") { mmappedBlocks = bytes }
            } else if inHeap, line.hasPrefix("<system type=\"current\""), let bytes = Self.attribute("size", in: line) {
                arenas.append((system: bytes, free: free))
            }
        }
    }

    private static func attribute(_ name: String, in line: Substring) -> Int? {
        let key = Array((name + "=\"").utf8)
        let bytes = Array(line.utf8)
        guard bytes.count > key.count else { return nil }
        for start in 0...(bytes.count - key.count) where bytes[start..<start + key.count].elementsEqual(key) {
            let digits = bytes[(start + key.count)...].prefix { $0 >= 0x30 && $0 <= 0x39 }
            return Int(String(decoding: digits, as: UTF8.self))
        }
        return nil
    }

    // MARK: - SQLite, threads

    private mutating func readSQLite() {
        typealias Status = @convention(c) (Int32, UnsafeMutablePointer<Int64>, UnsafeMutablePointer<Int64>, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "sqlite3_status64") else { return }
        let status = unsafeBitCast(symbol, to: Status.self)
        var current: Int64 = 0
        var highest: Int64 = 0
        // SQLITE_STATUS_MEMORY_USED = 0, SQLITE_STATUS_PAGECACHE_OVERFLOW = 2.
        if status(0, &current, &highest, 0) == 0 { sqliteBytes = Int(current) }
        if status(2, &current, &highest, 0) == 0 { sqlitePageCacheBytes = Int(current) }
    }

    private mutating func readThreads() {
        guard let directory = opendir("/proc/self/task") else { return }
        defer { closedir(directory) }
        while let entry = readdir(directory) {
            let id = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard id.first?.isNumber == true else { continue }
            let name = readWholeFile("/proc/self/task/\(id)/comm")?.split(separator: "\n").first.map(String.init) ?? "?"
            // Group numbered threads (NIO-ELT-0-#1, …) under one name.
            let stem = String(name.prefix { !$0.isNumber })
            threads[stem, default: 0] += 1
        }
    }
}

/// A whole (procfs) file as text, read in bounded steps (at most 64 MiB).
func readWholeFile(_ path: String) -> String? {
    let descriptor = open(path, O_RDONLY)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while bytes.count < 64 << 20 {
        let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        if count <= 0 { break }
        bytes.append(contentsOf: chunk.prefix(count))
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// The target of a symbolic link, or "" if it cannot be read.
func readLink(_ path: String) -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = buffer.withUnsafeMutableBufferPointer { readlink(path, $0.baseAddress!, $0.count - 1) }
    guard count > 0 else { return "" }
    return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
