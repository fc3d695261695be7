import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The raw baseline for throughput: `count` bytes copied through an `AF_UNIX` `SOCK_STREAM`
/// socketpair between two threads of this process (a writer thread, and the calling thread
/// reading), in `chunk`-byte writes. Returns the wall time from first write to last byte read.
func socketPairCopy(count: Int, chunk: Int) throws -> Duration {
    var descriptors: [Int32] = [0, 0]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &descriptors) == 0 else {
        throw BenchmarkError("socketpair failed (errno \(errno))")
    }
    let (writer, reader) = (descriptors[0], descriptors[1])
    defer {
        close(writer)
        close(reader)
    }
    let data = pattern(count, seed: 5)
    let clock = ContinuousClock()
    let start = clock.now
    let thread = Thread {
        var position = 0
        data.withUnsafeBytes { raw in
            while position < count {
                let length = min(chunk, count - position)
                let written = write(writer, raw.baseAddress! + position, length)
                if written <= 0 { return }
                position += written
            }
        }
    }
    thread.start()
    var buffer = [UInt8](repeating: 0, count: chunk)
    var received = 0
    var checksum: UInt64 = 0
    while received < count {
        let got = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
        guard got > 0 else { throw BenchmarkError("socketpair read failed (errno \(errno))") }
        // Touch the bytes, as the app side does when it compares them.
        for index in 0..<got { checksum &+= UInt64(buffer[index]) }
        received += got
    }
    let elapsed = clock.now - start
    if checksum == 0 { print("") }
    return elapsed
}
