#if canImport(Glibc)
import Glibc
#endif

/// The raw baseline for durable writes: write `size` bytes then `fdatasync`, in a loop for
/// `duration`, on a file in `directory`. Appending grows the file (so each sync also commits
/// its size); `overwrite` rewrites the first bytes instead. Returns syncs per second.
func fdatasyncRate(directory: String, size: Int, duration: Duration, overwrite: Bool) throws -> Double {
    try withScratchFile(in: directory, named: "fdatasync-baseline") { descriptor in
        try fdatasyncRate(descriptor: descriptor, size: size, duration: duration, overwrite: overwrite)
    }
}

private func fdatasyncRate(descriptor: Int32, size: Int, duration: Duration, overwrite: Bool) throws -> Double {
    let bytes = [UInt8](repeating: 0x5A, count: size)
    let clock = ContinuousClock()
    let start = clock.now
    let deadline = start + duration
    var count = 0
    var offset = 0
    while clock.now < deadline {
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, size, off_t(offset)) }
        guard written == size else { throw BenchmarkError("write failed (errno \(errno))") }
        guard fdatasync(descriptor) == 0 else { throw BenchmarkError("fdatasync failed (errno \(errno))") }
        if !overwrite { offset += size }
        count += 1
    }
    return Double(count) / (clock.now - start).seconds
}

/// The ceiling on durable throughput: `count` bytes appended to a file in `directory` in
/// `chunk`-byte writes, each followed by `fdatasync` (an app's write returns once its bytes are
/// durable, so each chunk must reach the disk before the next is acknowledged). Returns the
/// wall time. streamd makes every byte durable at least once before acknowledging it, so it
/// cannot carry bytes faster than this.
func durableAppendTime(directory: String, count: Int, chunk: Int) throws -> Duration {
    try withScratchFile(in: directory, named: "durable-baseline") { descriptor in
        try durableAppendTime(descriptor: descriptor, count: count, chunk: chunk)
    }
}

private func durableAppendTime(descriptor: Int32, count: Int, chunk: Int) throws -> Duration {
    let bytes = pattern(chunk, seed: 7)
    let clock = ContinuousClock()
    let start = clock.now
    var offset = 0
    while offset < count {
        let length = min(chunk, count - offset)
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, length, off_t(offset)) }
        guard written == length else { throw BenchmarkError("write failed (errno \(errno))") }
        guard fdatasync(descriptor) == 0 else { throw BenchmarkError("fdatasync failed (errno \(errno))") }
        offset += length
    }
    return clock.now - start
}

/// Creates (or truncates) file `name` in `directory` for writing, mode 0600, passes its
/// descriptor to `body`, then closes and removes it.
private func withScratchFile<T>(in directory: String, named name: String, _ body: (Int32) throws -> T) throws -> T {
    let path = directory + "/" + name
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard descriptor >= 0 else { throw BenchmarkError("open \(path) failed (errno \(errno))") }
    defer {
        close(descriptor)
        unlink(path)
    }
    return try body(descriptor)
}
