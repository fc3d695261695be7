import CBOR

/// The `write` request and its `written` reply, encoded and decoded without a ``CBOR/CBORValue``
/// tree: the bytes the general encoder writes, in its key order.
///
/// Decoding accepts only that exact layout (the keys in the encoder's order, every head in its
/// shortest form, nothing after the map) with values the general decoder would accept as they
/// are, and returns `nil` for anything else: the caller then decodes the payload with the
/// bounded general decoder, which gives the same result for what this accepts and the one
/// documented error for the rest. It is never the only check of untrusted input.
enum WriteFastPath {
    // The keys, as CBOR text strings (head and bytes).
    private static let id: [UInt8] = key(IPCKey.id)
    private static let op: [UInt8] = key(IPCKey.op)
    private static let write: [UInt8] = key("write")
    private static let name: [UInt8] = key(IPCKey.name)
    private static let offset: [UInt8] = key(IPCKey.offset)
    private static let data: [UInt8] = key(IPCKey.data)
    private static let reply: [UInt8] = key(IPCKey.reply)
    private static let written: [UInt8] = key(IPCReplyKind.written.rawValue)
    private static let accepted: [UInt8] = key(IPCKey.accepted)

    /// `text` as a CBOR text string: its head and its bytes.
    private static func key(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        CBORHead.append(major: 3, UInt64(text.utf8.count), to: &bytes)
        bytes += text.utf8
        return bytes
    }

    /// The framed `write` request: the bytes of `IPCFraming.frame(message.cborValue.encoded())`.
    static func framedWrite(id requestID: UInt64, name streamName: StreamName, offset start: UInt64, data bytes: [UInt8]) -> [UInt8] {
        let nameLength = streamName.rawValue.utf8.count
        let payloadLength =
            1 + id.count + CBORHead.length(requestID) + op.count + write.count + name.count + CBORHead.length(UInt64(nameLength))
            + nameLength + offset.count + CBORHead.length(start) + data.count + CBORHead.length(UInt64(bytes.count)) + bytes.count
        var frame = IPCFraming.startFrame(payloadLength: payloadLength)
        frame.append(0xa5)
        frame += id
        CBORHead.append(major: 0, requestID, to: &frame)
        frame += op
        frame += write
        frame += name
        CBORHead.append(major: 3, UInt64(nameLength), to: &frame)
        frame += streamName.rawValue.utf8
        frame += offset
        CBORHead.append(major: 0, start, to: &frame)
        frame += data
        CBORHead.append(major: 2, UInt64(bytes.count), to: &frame)
        frame += bytes
        return frame
    }

    /// The framed `written` reply: the bytes of `IPCFraming.frame(message.cborValue.encoded())`.
    static func framedWritten(id requestID: UInt64, accepted count: UInt64, offset end: UInt64) -> [UInt8] {
        let payloadLength =
            1 + id.count + CBORHead.length(requestID) + reply.count + written.count + accepted.count + CBORHead.length(count)
            + offset.count + CBORHead.length(end)
        var frame = IPCFraming.startFrame(payloadLength: payloadLength)
        frame.append(0xa4)
        frame += id
        CBORHead.append(major: 0, requestID, to: &frame)
        frame += reply
        frame += written
        frame += accepted
        CBORHead.append(major: 0, count, to: &frame)
        frame += offset
        CBORHead.append(major: 0, end, to: &frame)
        return frame
    }

    /// The `write` request in `payload` if it has exactly the encoder's layout and valid
    /// values; `nil` otherwise.
    static func decodeWrite(_ payload: [UInt8]) -> IPCRequestMessage? {
        guard payload.count <= IPCLimits.maxFrameSize else { return nil }
        return payload.withUnsafeBytes { bytes -> IPCRequestMessage? in
            var reader = Reader(bytes: bytes)
            guard reader.map(count: 5), reader.literal(id), let requestID = reader.unsigned(), reader.literal(op), reader.literal(write),
                reader.literal(name), let nameBytes = reader.string(major: 3, max: IPCLimits.maxNameLength),
                reader.literal(offset), let start = reader.unsigned(),
                reader.literal(data), let dataBytes = reader.string(major: 2, max: IPCLimits.maxChunk), reader.atEnd
            else { return nil }
            // Stream names are ASCII: other bytes (maybe invalid UTF-8) go the general way.
            guard nameBytes.allSatisfy({ $0 < 0x80 }), let streamName = try? StreamName(String(decoding: nameBytes, as: UTF8.self)) else {
                return nil
            }
            return IPCRequestMessage(id: requestID, request: .write(name: streamName, offset: start, data: Array(dataBytes)))
        }
    }

    /// The `written` reply in `payload` if it has exactly the encoder's layout; `nil` otherwise.
    static func decodeWritten(_ payload: [UInt8]) -> IPCServerMessage? {
        guard payload.count <= IPCLimits.maxFrameSize else { return nil }
        return payload.withUnsafeBytes { bytes -> IPCServerMessage? in
            var reader = Reader(bytes: bytes)
            guard reader.map(count: 4), reader.literal(id), let requestID = reader.unsigned(), reader.literal(reply), reader.literal(written),
                reader.literal(accepted), let count = reader.unsigned(), reader.literal(offset), let end = reader.unsigned(), reader.atEnd
            else { return nil }
            return .reply(id: requestID, .success(.written(accepted: count, offset: end)))
        }
    }

    /// Reads a fixed layout; every method returns `nil` or false at the first deviation.
    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        /// Whether every byte was read.
        var atEnd: Bool { index == bytes.count }

        /// A map head announcing `count` pairs.
        mutating func map(count: UInt64) -> Bool {
            guard let head = CBORHead.read(bytes, at: &index) else { return false }
            return head.major == 5 && head.argument == count
        }

        /// Exactly the bytes `expected` (a key or a fixed value).
        mutating func literal(_ expected: [UInt8]) -> Bool {
            guard bytes.count - index >= expected.count else { return false }
            for (offset, byte) in expected.enumerated() where bytes[index + offset] != byte { return false }
            index += expected.count
            return true
        }

        /// An unsigned integer.
        mutating func unsigned() -> UInt64? {
            guard let head = CBORHead.read(bytes, at: &index), head.major == 0 else { return nil }
            return head.argument
        }

        /// A byte (major 2) or text (major 3) string of at most `max` bytes.
        mutating func string(major: UInt8, max: Int) -> UnsafeRawBufferPointer? {
            guard let head = CBORHead.read(bytes, at: &index), head.major == major, head.argument <= UInt64(max),
                UInt64(bytes.count - index) >= head.argument
            else { return nil }
            let start = index
            index += Int(head.argument)
            return UnsafeRawBufferPointer(rebasing: bytes[start..<index])
        }
    }
}
