#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The records that follow the header of a version 2 `--state` file, one per box change.
///
/// A record is `kind` (1 byte: 1 data, 2 tombstone, 3 removed), the box ID (32 bytes), the
/// plaintext's length (4 bytes, big-endian; 0 unless `kind` is 1), the plaintext, and a CRC-32
/// (IEEE, big-endian) of everything before it. Replayed in order, each record sets its box to
/// what it holds, so a box's last record is its state. Saves append records for the boxes
/// changed since the last save and `fdatasync` the file; a save that would make the file larger
/// than ``compactionThreshold(liveLength:limit:)`` rewrites it whole instead (compaction).
enum StateLog {
    /// What a record sets its box to.
    enum Kind: UInt8 {
        case data = 1
        case tombstone = 2
        case removed = 3
    }

    /// Bytes of a record besides its plaintext.
    static let overhead = 1 + 32 + 4 + 4

    /// Appends the record for box `boxID` holding `box` (`nil`: removed).
    static func appendRecord(boxID: [UInt8], box: StoredBox?, to buffer: inout [UInt8]) {
        precondition(boxID.count == 32, "box IDs are 32 bytes")
        let start = buffer.count
        let kind: Kind = box.map { $0.isTombstone ? .tombstone : .data } ?? .removed
        let plaintext = kind == .data ? box!.plaintext : []
        buffer.append(kind.rawValue)
        buffer.append(contentsOf: boxID)
        appendUInt32(UInt32(plaintext.count), to: &buffer)
        buffer.append(contentsOf: plaintext)
        let checksum = buffer.withUnsafeBufferPointer { crc32(UnsafeBufferPointer(rebasing: $0[start...])) }
        appendUInt32(checksum, to: &buffer)
    }

    /// How records end when read back.
    enum Ending: Equatable {
        /// The last record ends at the end of the input.
        case clean
        /// The input ends inside a record (an append cut short); the bytes from `offset` on are
        /// not part of the log.
        case tornTail(offset: Int)
    }

    /// Replays the records of `bytes` from `start` onto `boxes`.
    ///
    /// A record cut short at the end of the input, or the last record with a wrong checksum,
    /// is a torn append and ends the log; any other damage is ``SimStateError/Code-swift.struct/invalid``,
    /// as is a record longer than `maxPlaintextLength` allows or more than `capacity` boxes.
    static func replay(
        _ bytes: [UInt8], from start: Int, onto boxes: inout [[UInt8]: StoredBox], capacity: Int, maxPlaintextLength: Int
    ) throws(SimStateError) -> Ending {
        let count = bytes.count
        var offset = start
        return try bytes.withUnsafeBufferPointer { (buffer) throws(SimStateError) -> Ending in
            while offset < count {
                guard count - offset >= overhead else { return .tornTail(offset: offset) }
                guard let kind = Kind(rawValue: buffer[offset]) else {
                    throw SimStateError(.invalid, "record at byte \(offset) has unknown kind \(buffer[offset])")
                }
                let length = Int(readUInt32(buffer, at: offset + 33))
                guard length <= maxPlaintextLength, kind == .data || length == 0 else {
                    throw SimStateError(.invalid, "record at byte \(offset) holds \(length) bytes (larger than the geometry allows)")
                }
                let end = offset + overhead + length
                guard end <= count else { return .tornTail(offset: offset) }
                let stored = readUInt32(buffer, at: end - 4)
                guard crc32(UnsafeBufferPointer(rebasing: buffer[offset..<(end - 4)])) == stored else {
                    if end == count { return .tornTail(offset: offset) }
                    throw SimStateError(.invalid, "record at byte \(offset) fails its checksum")
                }
                let boxID = Array(buffer[(offset + 1)..<(offset + 33)])
                switch kind {
                case .data: boxes[boxID] = StoredBox(plaintext: Array(buffer[(offset + 37)..<(end - 4)]), isTombstone: false)
                case .tombstone: boxes[boxID] = StoredBox(plaintext: [], isTombstone: true)
                case .removed: boxes[boxID] = nil
                }
                guard boxes.count <= capacity else {
                    throw SimStateError(.invalid, "more than \(capacity) boxes (the capacity)")
                }
                offset = end
            }
            return .clean
        }
    }

    /// The file length beyond which a save compacts instead of appending: twice the live
    /// records (so compaction's cost, spread over the appends before it, stays proportional to
    /// them), at least 1 MiB, and never more than `limit`, the largest file a load accepts.
    static func compactionThreshold(liveLength: Int, limit: Int) -> Int {
        min(max(2 * liveLength, 1 << 20), limit)
    }

    /// Appends `bytes` at `offset` (the file's known end) and makes them durable (`fdatasync`).
    static func append(_ bytes: [UInt8], at offset: Int, path: String) throws(SimStateError) {
        let fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else { throw SimStateError(.io, "cannot open \(path) to append: \(StateFile.describe(errno: errno))") }
        defer { close(fd) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let e = n < 0 ? errno : ENOSPC
                throw SimStateError(.io, "cannot append to \(path): \(StateFile.describe(errno: e))")
            }
            done += n
        }
        guard fdatasync(fd) == 0 else {
            throw SimStateError(.io, "fdatasync \(path) failed: \(StateFile.describe(errno: errno))")
        }
    }

    private static func appendUInt32(_ value: UInt32, to buffer: inout [UInt8]) {
        buffer.append(UInt8(truncatingIfNeeded: value >> 24))
        buffer.append(UInt8(truncatingIfNeeded: value >> 16))
        buffer.append(UInt8(truncatingIfNeeded: value >> 8))
        buffer.append(UInt8(truncatingIfNeeded: value))
    }

    private static func readUInt32(_ buffer: UnsafeBufferPointer<UInt8>, at offset: Int) -> UInt32 {
        UInt32(buffer[offset]) << 24 | UInt32(buffer[offset + 1]) << 16 | UInt32(buffer[offset + 2]) << 8 | UInt32(buffer[offset + 3])
    }

    /// CRC-32 (IEEE 802.3, reflected, as zlib computes it) of `bytes`.
    static func crc32(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        crcTable.withUnsafeBufferPointer { table in
            for byte in bytes {
                crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8)
            }
        }
        return crc ^ 0xffff_ffff
    }

    private static let crcTable: [UInt32] = (0..<256).map { (n: UInt32) -> UInt32 in
        var c = n
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }
}
