#if canImport(Glibc)
import Glibc
#endif

/// A failure of the benchmark itself (not a measurement).
struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A temporary directory under `base`, removed with its contents by ``remove()``.
struct ScratchDirectory {
    let path: String

    init(base: String) throws {
        var template = Array((base + "/streamd-bench-XXXXXX").utf8CString)
        let result = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard result != nil else { throw BenchmarkError("mkdtemp in \(base) failed (errno \(errno))") }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func remove() { removeTree(path) }
}

/// Removes a directory tree.
func removeTree(_ path: String) {
    guard let directory = opendir(path) else {
        unlink(path)
        return
    }
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if name == "." || name == ".." { continue }
        let child = path + "/" + name
        var info = stat()
        if lstat(child, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            removeTree(child)
        } else {
            unlink(child)
        }
    }
    closedir(directory)
    rmdir(path)
}

/// This process's resident set size in bytes (`VmRSS` in /proc/self/status), after returning
/// freed heap memory to the system so the figure counts only memory in use.
func residentBytes() -> Int {
    trimHeap()
    let descriptor = open("/proc/self/status", O_RDONLY)
    guard descriptor >= 0 else { return 0 }
    defer { close(descriptor) }
    var buffer = [UInt8](repeating: 0, count: 16_384)
    let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
    guard count > 0 else { return 0 }
    let text = String(decoding: buffer.prefix(count), as: UTF8.self)
    for line in text.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        let digits = line.filter { $0.isNumber }
        return (Int(digits) ?? 0) * 1024
    }
    return 0
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) }
}

/// Calls glibc's `malloc_trim(0)` (not exported by the Glibc module) so freed heap pages go back
/// to the system before RSS is read.
func trimHeap() {
    typealias Trim = @convention(c) (Int) -> Int32
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
    _ = unsafeBitCast(symbol, to: Trim.self)(0)
}

/// User plus system CPU time this process has used, in seconds (all threads).
func processCPUSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func seconds(_ value: timeval) -> Double { Double(value.tv_sec) + Double(value.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// CPU seconds per second this process burns while the benchmark itself sleeps for `duration`:
/// work left behind by earlier daemons (it should be about zero).
func idleCPU(over duration: Duration = .seconds(1)) async throws -> Double {
    let before = processCPUSeconds()
    try await Task.sleep(for: duration)
    return (processCPUSeconds() - before) / duration.seconds
}
