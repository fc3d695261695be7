/// Finds where the first CBOR data item of a growing buffer ends, resuming where it stopped.
///
/// It reads only item heads (and skips string contents by their length), so feeding a message
/// chunk by chunk costs time linear in its size; the value is decoded once, when complete.
/// It checks only what it needs to find the end: the decoder validates the item afterwards.
/// Like the decoder (`CBORDecoder`), it refuses indefinite lengths.
struct CBORItemScanner {
    /// The scanner's verdict on the bytes seen so far.
    enum Outcome: Equatable {
        /// The first item is complete and `length` bytes long.
        case complete(length: Int)
        /// More bytes are needed.
        case incomplete
        /// The item is, or declares itself, longer than the limit.
        case tooLarge
        /// The bytes cannot start a well-formed item (or nest too deeply); the decoder says why.
        case malformed
    }

    /// The offset, from the item's start, of the next head to read.
    private(set) var offset = 0
    /// Items still to come in each open array, map or tag.
    private var open: [UInt64] = []

    /// Continues scanning `bytes`, which start at the item's first byte and extend those of
    /// the previous call.
    ///
    /// - Parameters:
    ///   - limit: the largest item accepted, in bytes.
    ///   - maxDepth: the deepest nesting accepted (the decoder's limit); deeper is `.malformed`.
    mutating func scan(_ bytes: ArraySlice<UInt8>, limit: Int, maxDepth: Int) -> Outcome {
        let base = bytes.startIndex
        let count = bytes.count
        while true {
            guard offset <= limit else { return .tooLarge }
            guard offset < count else { return .incomplete }
            let initial = bytes[base + offset]
            let major = initial >> 5
            let info = initial & 0x1f
            let argumentLength: Int
            switch info {
            case 0..<24: argumentLength = 0
            case 24: argumentLength = 1
            case 25: argumentLength = 2
            case 26: argumentLength = 4
            case 27: argumentLength = 8
            default:
                // Reserved values, breaks and indefinite lengths, which the decoder refuses too.
                return .malformed
            }
            let headLength = 1 + argumentLength
            guard offset + headLength <= limit else { return .tooLarge }
            guard offset + headLength <= count else { return .incomplete }
            var argument = info < 24 ? UInt64(info) : 0
            for i in 0..<argumentLength { argument = argument << 8 | UInt64(bytes[base + offset + 1 + i]) }
            switch major {
            case 2, 3:
                guard argument <= UInt64(limit - offset - headLength) else { return .tooLarge }
                let end = offset + headLength + Int(argument)
                guard end <= count else { return .incomplete }  // The head is read again next time: O(1).
                offset = end
                if finishItem() { return .complete(length: offset) }
            case 4, 5, 6:
                // Every contained item takes at least one byte, so a count beyond the limit cannot fit.
                guard argument <= UInt64(limit) else { return .tooLarge }
                let items = major == 5 ? argument * 2 : (major == 6 ? 1 : argument)
                offset += headLength
                if items == 0 {
                    if finishItem() { return .complete(length: offset) }
                } else {
                    guard open.count < maxDepth + 1 else { return .malformed }
                    open.append(items)
                }
            default:
                // Integers, simple values and floats: the head is the whole item.
                offset += headLength
                if finishItem() { return .complete(length: offset) }
            }
        }
    }

    /// Counts one finished item in its container, closing containers that are now full;
    /// returns whether the outermost item is complete.
    private mutating func finishItem() -> Bool {
        while let remaining = open.last {
            if remaining > 1 {
                open[open.count - 1] = remaining - 1
                return false
            }
            open.removeLast()
        }
        return true
    }
}
