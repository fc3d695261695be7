import CCBOR

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decodes CBOR from untrusted bytes into ``CBORValue``s.
///
/// The decoder drives libcbor's allocation-free streaming decoder (`cbor_stream_decode`) one
/// data item at a time and builds the value itself. It never calls `cbor_load`, which trusts
/// declared element counts. Before anything is allocated for a container it checks that:
///
/// - the nesting depth stays within ``Limits/maxDepth``;
/// - every announced element (and every element still owed to enclosing containers) can have
///   at least one byte of the remaining input, so a header announcing 2^64 elements in a
///   10-byte input fails at once with ``CBORError/Code-swift.struct/lengthExceedsInput``;
/// - the number of data items stays within ``Limits/maxItems``.
///
/// Memory use is therefore bounded by a small multiple of the input length.
///
/// Supported: integers, definite-length byte and text strings (text must be valid UTF-8),
/// definite-length arrays and maps (keys must be distinct), tags, `false`, `true`, `null`,
/// `undefined` and half, single and double precision floats (all widened to `Double`).
/// Indefinite lengths and other simple values are rejected as
/// ``CBORError/Code-swift.struct/unsupported``.
///
/// All functions use typed throws and throw only ``CBORError``.
public enum CBORDecoder {
    /// Resource limits applied while decoding.
    public struct Limits: Sendable, Hashable {
        /// The largest number of arrays, maps and tags that may enclose a data item, counting
        /// the container itself.
        ///
        /// With a depth of 1, `[1, 2]` decodes but `[[1]]` does not; with 0 only scalars and
        /// strings decode.
        public var maxDepth: Int
        /// The largest number of data items in one decoded value.
        ///
        /// Every item counts once: each integer, string, float, simple value, array, map,
        /// map key, map value and tag. An array of `n` integers is `n + 1` items.
        public var maxItems: Int

        /// Creates limits; the defaults suit protocol messages of up to a few megabytes.
        public init(maxDepth: Int = 32, maxItems: Int = 100_000) {
            self.maxDepth = maxDepth
            self.maxItems = maxItems
        }
    }

    /// Decodes exactly one data item that fills all of `bytes`.
    ///
    /// - Throws: ``CBORError``; ``CBORError/Code-swift.struct/trailingBytes`` if bytes follow the item.
    public static func decode(_ bytes: [UInt8], limits: Limits = .init()) throws(CBORError) -> CBORValue {
        try bytes.withUnsafeBytes { decodeWhole($0, limits: limits) }.get()
    }

    /// Decodes exactly one data item that fills all of `bytes`; offsets count from the slice's start.
    ///
    /// - Throws: ``CBORError``; ``CBORError/Code-swift.struct/trailingBytes`` if bytes follow the item.
    public static func decode(_ bytes: ArraySlice<UInt8>, limits: Limits = .init()) throws(CBORError) -> CBORValue {
        try bytes.withUnsafeBytes { decodeWhole($0, limits: limits) }.get()
    }

    /// Decodes exactly one data item that fills all of `bytes`.
    ///
    /// - Throws: ``CBORError``; ``CBORError/Code-swift.struct/trailingBytes`` if bytes follow the item.
    public static func decode(_ bytes: UnsafeRawBufferPointer, limits: Limits = .init()) throws(CBORError) -> CBORValue {
        try decodeWhole(bytes, limits: limits).get()
    }

    /// Decodes the first data item of `bytes` and ignores what follows it.
    ///
    /// - Returns: the value and the number of bytes it occupies.
    /// - Throws: ``CBORError``.
    public static func decodePrefix(
        _ bytes: [UInt8], limits: Limits = .init()
    ) throws(CBORError) -> (value: CBORValue, consumed: Int) {
        try bytes.withUnsafeBytes { decodeFirst($0, limits: limits) }.get()
    }

    /// Decodes the first data item of `bytes` and ignores what follows it; offsets count from
    /// the slice's start.
    ///
    /// - Returns: the value and the number of bytes it occupies.
    /// - Throws: ``CBORError``.
    public static func decodePrefix(
        _ bytes: ArraySlice<UInt8>, limits: Limits = .init()
    ) throws(CBORError) -> (value: CBORValue, consumed: Int) {
        try bytes.withUnsafeBytes { decodeFirst($0, limits: limits) }.get()
    }

    /// Decodes the first data item of `bytes` and ignores what follows it.
    ///
    /// - Returns: the value and the number of bytes it occupies.
    /// - Throws: ``CBORError``.
    public static func decodePrefix(
        _ bytes: UnsafeRawBufferPointer, limits: Limits = .init()
    ) throws(CBORError) -> (value: CBORValue, consumed: Int) {
        try decodeFirst(bytes, limits: limits).get()
    }

    // MARK: - Driver

    private static func decodeWhole(_ input: UnsafeRawBufferPointer, limits: Limits) -> Result<CBORValue, CBORError> {
        switch decodeFirst(input, limits: limits) {
        case .failure(let error):
            return .failure(error)
        case .success(let decoded):
            guard decoded.consumed == input.count else {
                let extra = input.count - decoded.consumed
                return .failure(CBORError(.trailingBytes, offset: decoded.consumed, "\(extra) bytes follow the data item"))
            }
            return .success(decoded.value)
        }
    }

    private static func decodeFirst(
        _ input: UnsafeRawBufferPointer, limits: Limits
    ) -> Result<(value: CBORValue, consumed: Int), CBORError> {
        let count = input.count
        guard count > 0, let raw = input.baseAddress else {
            return .failure(CBORError(.truncated, offset: 0, "empty input"))
        }
        let base = raw.assumingMemoryBound(to: UInt8.self)
        let builder = Builder(base: base, count: count, limits: limits)
        var callbacks = makeCallbacks()
        let context = Unmanaged.passUnretained(builder).toOpaque()

        return withExtendedLifetime(builder) { () -> Result<(value: CBORValue, consumed: Int), CBORError> in
            var offset = 0
            while builder.result == nil {
                guard offset < count else {
                    return .failure(CBORError(.truncated, offset: count, "input ends before the value is complete"))
                }
                builder.itemOffset = offset
                let initial = base[offset]
                if (0xc6...0xd4).contains(initial) {
                    // libcbor 0.8 refuses one-byte tags 6...20 as "unassigned"; they are
                    // well-formed CBOR, so they are handled here.
                    offset += 1
                    builder.tag(UInt64(initial - 0xc0))
                } else {
                    let status = cbor_stream_decode(base + offset, count - offset, &callbacks, context)
                    switch status.status {
                    case CBOR_DECODER_FINISHED:
                        offset += status.read
                    case CBOR_DECODER_NEDATA:
                        return .failure(shortInputError(base: base, count: count, offset: offset))
                    default:
                        return .failure(rejectedHeaderError(base: base, count: count, offset: offset))
                    }
                }
                if let error = builder.error {
                    return .failure(error)
                }
            }
            return .success((builder.result!, offset))
        }
    }

    /// Explains a `CBOR_DECODER_NEDATA` answer for the item at `offset`.
    ///
    /// libcbor reports a definite string whose declared length exceeds the input the same way
    /// as a head cut short. The head is complete when `count - offset` covers it; then the
    /// declared length is what does not fit.
    private static func shortInputError(base: UnsafePointer<UInt8>, count: Int, offset: Int) -> CBORError {
        let initial = base[offset]
        let major = initial >> 5
        let available = count - offset
        if major == 2 || major == 3, let head = headLength(initial), available >= head {
            let declared = headArgument(base: base + offset, headLength: head, initial: initial)
            let kind = major == 2 ? "byte string" : "text string"
            return CBORError(
                .lengthExceedsInput, offset: offset,
                "\(kind) declares \(declared) bytes but only \(available - head) remain")
        }
        return CBORError(.truncated, offset: offset, "input ends inside a data item head (0x\(hex(initial)))")
    }

    /// Explains a `CBOR_DECODER_ERROR` answer for the item at `offset`.
    private static func rejectedHeaderError(base: UnsafePointer<UInt8>, count: Int, offset: Int) -> CBORError {
        let initial = base[offset]
        let additional = initial & 0x1f
        switch initial {
        case 0xe0...0xf3:
            return CBORError(.unsupported, offset: offset, "unassigned simple value \(additional)")
        case 0xf8:
            guard offset + 1 < count else {
                return CBORError(.truncated, offset: offset, "input ends inside a simple value")
            }
            let value = base[offset + 1]
            if value < 32 {
                return CBORError(.malformed, offset: offset, "two-byte encoding of simple value \(value)")
            }
            return CBORError(.unsupported, offset: offset, "unassigned simple value \(value)")
        default:
            if (28...30).contains(additional) {
                return CBORError(.malformed, offset: offset, "reserved additional information in head 0x\(hex(initial))")
            }
            return CBORError(.malformed, offset: offset, "invalid head 0x\(hex(initial))")
        }
    }
}

// MARK: - Head helpers

/// The length of the head that starts with `initial`, or `nil` for reserved or indefinite forms.
private func headLength(_ initial: UInt8) -> Int? {
    switch initial & 0x1f {
    case 0..<24: return 1
    case 24: return 2
    case 25: return 3
    case 26: return 5
    case 27: return 9
    default: return nil
    }
}

/// The argument of a complete head of `headLength` bytes at `pointer`.
private func headArgument(base pointer: UnsafePointer<UInt8>, headLength: Int, initial: UInt8) -> UInt64 {
    if headLength == 1 { return UInt64(initial & 0x1f) }
    var value: UInt64 = 0
    for index in 1..<headLength {
        value = value << 8 | UInt64(pointer[index])
    }
    return value
}

private func hex(_ byte: UInt8) -> String {
    let digits = String(byte, radix: 16)
    return byte < 16 ? "0" + digits : digits
}

// MARK: - Builder

/// One open container while decoding.
private struct Frame {
    enum Kind { case array, map, tag }

    var kind: Kind
    /// Child items still to complete (for maps, keys and values count separately).
    var remaining: Int
    var tag: UInt64 = 0
    var elements: [CBORValue] = []
    var entries: [CBORMapEntry] = []
    /// A decoded key waiting for its value.
    var pendingKey: CBORValue?
    /// Offset of the key being decoded, for error reports.
    var keyOffset: Int = 0
    /// Keys seen so far, once the map is large enough for hashing to beat a linear scan.
    var keySet: Set<CBORValue>?
    /// Where each key lies in the input, while every key so far is ASCII text (compared byte
    /// for byte, which for ASCII is what `String` equality decides).
    var asciiKeys: [KeySpan] = []
    /// The ASCII keys by a seeded hash of their bytes (to an index of ``asciiKeys``), once
    /// there are more than ``linearASCIIKeyLimit`` of them.
    var asciiKeyIndex: [Int: Int]?
    /// Whether a key other than ASCII text has been seen: from then on keys are compared as
    /// values (a non-ASCII string can equal an ASCII one, e.g. U+212A KELVIN SIGN and "K").
    var hasOtherKeys = false
}

/// Where an ASCII text key lies in the input, with its first bytes for a quick comparison.
private struct KeySpan {
    var start: Int
    var length: Int
    /// The first (up to) 8 bytes, zero-padded.
    var prefix: UInt64
}

/// ASCII keys are compared linearly (by length and first bytes) up to this many, then by hash.
private let linearASCIIKeyLimit = 64

/// Keys are compared linearly up to this many entries, then through a `Set`.
private let linearKeyScanLimit = 16

/// Receives libcbor's callbacks and assembles the value, enforcing the limits.
private final class Builder {
    let base: UnsafePointer<UInt8>
    let count: Int
    let maxDepth: Int
    let maxItems: Int

    /// Offset of the head being decoded.
    var itemOffset = 0
    /// The open containers; only this builder touches it, one callback at a time.
    @exclusivity(unchecked) var stack: [Frame] = []
    /// Data items seen so far.
    var items = 0
    /// Child slots announced by open containers whose items have not started yet.
    var outstanding = 0
    var result: CBORValue?
    var error: CBORError?

    init(base: UnsafePointer<UInt8>, count: Int, limits: CBORDecoder.Limits) {
        self.base = base
        self.count = count
        self.maxDepth = limits.maxDepth
        self.maxItems = limits.maxItems
    }

    func fail(_ code: CBORError.Code, at offset: Int? = nil, _ message: String) {
        if error == nil {
            error = CBORError(code, offset: offset ?? itemOffset, message)
        }
    }

    /// Accounts for a new head: it fills one announced slot of the innermost container.
    /// Returns `false` (after recording an error) if the item limit is exceeded.
    private func beginItem() -> Bool {
        if let top = stack.indices.last {
            outstanding -= 1
            if stack[top].kind == .map && stack[top].pendingKey == nil {
                stack[top].keyOffset = itemOffset
            }
        }
        items += 1
        if items + outstanding > maxItems {
            fail(.tooManyItems, "more than \(maxItems) data items")
            return false
        }
        return true
    }

    /// Bytes of input after the current head.
    private var bytesAfterHead: Int {
        let length = headLength(base[itemOffset]) ?? 1
        return count - itemOffset - length
    }

    /// Checks depth, input size and item count for a container announcing `slots` children.
    /// `slots` is the declared count as libcbor reports it, so it may be any `size_t`.
    private func admitContainer(slots declared: UInt, perElement: UInt, what: String) -> Int? {
        guard beginItem() else { return nil }
        guard stack.count < maxDepth else {
            fail(.nestingTooDeep, "nesting deeper than \(maxDepth)")
            return nil
        }
        let available = bytesAfterHead - outstanding
        guard available >= 0, declared <= UInt(available) / perElement else {
            fail(.lengthExceedsInput, "\(what) declares \(declared) elements but only \(max(available, 0)) bytes remain")
            return nil
        }
        let slots = Int(declared * perElement)
        guard items + outstanding + slots <= maxItems else {
            fail(.tooManyItems, "\(what) of \(declared) elements exceeds the limit of \(maxItems) data items")
            return nil
        }
        return slots
    }

    // MARK: Callbacks

    func scalar(_ value: CBORValue) {
        guard beginItem() else { return }
        complete(value)
    }

    func text(_ pointer: UnsafePointer<UInt8>?, _ length: Int) {
        guard beginItem() else { return }
        let utf8 = UnsafeBufferPointer(start: pointer, count: length)
        let string: String
        var keyChecked = false
        if isASCII(utf8) {
            if let top = stack.indices.last, stack[top].kind == .map, stack[top].pendingKey == nil, !stack[top].hasOtherKeys {
                // An ASCII key of a map whose keys are all ASCII so far: compared by bytes.
                guard admitASCIIKey(start: pointer.map { UnsafePointer($0) - base } ?? 0, length: length, inFrame: top) else {
                    fail(.duplicateKey, at: stack[top].keyOffset, "map key repeated")
                    return
                }
                keyChecked = true
            }
            // ASCII is valid UTF-8 (map keys and most protocol text): no validating pass.
            string = String(decoding: utf8, as: UTF8.self)
        } else if let validated = String(validating: utf8, as: UTF8.self) {
            string = validated
        } else {
            fail(.invalidUTF8, "text string of \(length) bytes is not valid UTF-8")
            return
        }
        complete(.text(string), keyChecked: keyChecked)
    }

    /// Records an ASCII key of the map at `index`; returns `false` if the map already has it.
    private func admitASCIIKey(start: Int, length: Int, inFrame index: Int) -> Bool {
        var prefix: UInt64 = 0
        for i in 0..<min(length, 8) { prefix |= UInt64(base[start + i]) << UInt64(8 * i) }
        let span = KeySpan(start: start, length: length, prefix: prefix)
        if stack[index].asciiKeyIndex == nil {
            for earlier in stack[index].asciiKeys where sameBytes(earlier, span) {
                return false
            }
            stack[index].asciiKeys.append(span)
            if stack[index].asciiKeys.count > linearASCIIKeyLimit {
                var table = [Int: Int](minimumCapacity: stack[index].remaining / 2 + stack[index].asciiKeys.count)
                for (position, key) in stack[index].asciiKeys.enumerated() where table[hash(key)] == nil {
                    table[hash(key)] = position
                }
                stack[index].asciiKeyIndex = table
            }
            return true
        }
        let h = hash(span)
        if let position = stack[index].asciiKeyIndex![h] {
            if sameBytes(stack[index].asciiKeys[position], span) { return false }
            // Two keys with one 64-bit hash (seeded per process, so not chosen by the input).
            for earlier in stack[index].asciiKeys where sameBytes(earlier, span) {
                return false
            }
        } else {
            stack[index].asciiKeyIndex![h] = stack[index].asciiKeys.count
        }
        stack[index].asciiKeys.append(span)
        return true
    }

    /// Whether two spans of the input hold the same bytes.
    private func sameBytes(_ a: KeySpan, _ b: KeySpan) -> Bool {
        a.length == b.length && a.prefix == b.prefix && (a.length <= 8 || memcmp(base + a.start + 8, base + b.start + 8, a.length - 8) == 0)
    }

    /// A seeded hash of a span's bytes.
    private func hash(_ span: KeySpan) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: UnsafeRawBufferPointer(start: base + span.start, count: span.length))
        return hasher.finalize()
    }

    /// Whether every byte is below 0x80.
    private func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var combined: UInt8 = 0
        for byte in bytes { combined |= byte }
        return combined < 0x80
    }

    func bytes(_ pointer: UnsafePointer<UInt8>?, _ length: Int) {
        guard beginItem() else { return }
        complete(.bytes(Array(UnsafeBufferPointer(start: pointer, count: length))))
    }

    func arrayStart(_ declared: Int) {
        guard let slots = admitContainer(slots: UInt(bitPattern: declared), perElement: 1, what: "array") else { return }
        if slots == 0 {
            complete(.array([]))
            return
        }
        var frame = Frame(kind: .array, remaining: slots)
        frame.elements.reserveCapacity(slots)
        stack.append(frame)
        outstanding += slots
    }

    func mapStart(_ declared: Int) {
        guard let slots = admitContainer(slots: UInt(bitPattern: declared), perElement: 2, what: "map") else { return }
        if slots == 0 {
            complete(.map([]))
            return
        }
        var frame = Frame(kind: .map, remaining: slots)
        frame.entries.reserveCapacity(slots / 2)
        stack.append(frame)
        outstanding += slots
    }

    func tag(_ value: UInt64) {
        guard beginItem() else { return }
        guard stack.count < maxDepth else {
            fail(.nestingTooDeep, "nesting deeper than \(maxDepth)")
            return
        }
        guard items + outstanding + 1 <= maxItems else {
            fail(.tooManyItems, "more than \(maxItems) data items")
            return
        }
        var frame = Frame(kind: .tag, remaining: 1)
        frame.tag = value
        stack.append(frame)
        outstanding += 1
    }

    func unsupported(_ what: String) {
        fail(.unsupported, "\(what) are not supported")
    }

    func strayBreak() {
        fail(.malformed, "\"break\" outside an indefinite-length item")
    }

    /// Hands a finished item to the innermost open container, closing containers it completes.
    ///
    /// - Parameter keyChecked: the item is a map key already found distinct (an ASCII key).
    private func complete(_ finished: CBORValue, keyChecked: Bool = false) {
        var value = finished
        var keyChecked = keyChecked
        while let top = stack.indices.last {
            switch stack[top].kind {
            case .tag:
                let tag = stack.removeLast().tag
                value = .tagged(tag, value)
                keyChecked = false
            case .array:
                stack[top].elements.append(value)
                stack[top].remaining -= 1
                if stack[top].remaining > 0 { return }
                value = .array(stack.removeLast().elements)
                keyChecked = false
            case .map:
                guard let key = stack[top].pendingKey else {
                    if !keyChecked {
                        stack[top].hasOtherKeys = true
                    }
                    if !keyChecked && isDuplicateKey(value, inFrame: top) {
                        fail(.duplicateKey, at: stack[top].keyOffset, "map key repeated")
                        return
                    }
                    stack[top].pendingKey = value
                    stack[top].remaining -= 1
                    return
                }
                stack[top].pendingKey = nil
                stack[top].entries.append(CBORMapEntry(key, value))
                stack[top].remaining -= 1
                if stack[top].remaining > 0 { return }
                value = .map(stack.removeLast().entries)
                keyChecked = false
            }
        }
        result = value
    }

    /// Whether `key` is already a key of the map at `index`; records it if not and hashing is on.
    private func isDuplicateKey(_ key: CBORValue, inFrame index: Int) -> Bool {
        if stack[index].keySet != nil {
            return !stack[index].keySet!.insert(key).inserted
        }
        if stack[index].entries.contains(where: { $0.key == key }) {
            return true
        }
        if stack[index].entries.count + 1 >= linearKeyScanLimit {
            var keys = Set<CBORValue>(minimumCapacity: stack[index].remaining / 2 + stack[index].entries.count + 1)
            for entry in stack[index].entries {
                keys.insert(entry.key)
            }
            keys.insert(key)
            stack[index].keySet = keys
        }
        return false
    }
}

// MARK: - libcbor callbacks

@inline(__always)
private func builder(_ context: UnsafeMutableRawPointer?) -> Builder {
    Unmanaged<Builder>.fromOpaque(context!).takeUnretainedValue()
}

/// The callback bundle handed to `cbor_stream_decode`: non-capturing closures, so each is a
/// plain C function pointer; the ``Builder`` travels through the context pointer.
private func makeCallbacks() -> cbor_callbacks {
    var callbacks = cbor_callbacks()
    callbacks.uint8 = { context, value in builder(context).scalar(.unsigned(UInt64(value))) }
    callbacks.uint16 = { context, value in builder(context).scalar(.unsigned(UInt64(value))) }
    callbacks.uint32 = { context, value in builder(context).scalar(.unsigned(UInt64(value))) }
    callbacks.uint64 = { context, value in builder(context).scalar(.unsigned(value)) }
    callbacks.negint8 = { context, value in builder(context).scalar(.negative(UInt64(value))) }
    callbacks.negint16 = { context, value in builder(context).scalar(.negative(UInt64(value))) }
    callbacks.negint32 = { context, value in builder(context).scalar(.negative(UInt64(value))) }
    callbacks.negint64 = { context, value in builder(context).scalar(.negative(value)) }
    // In libcbor's struct the definite-length string callbacks are `byte_string` and
    // `string`; `byte_string_start` and `string_start` announce indefinite-length strings.
    callbacks.byte_string = { context, pointer, length in builder(context).bytes(pointer, length) }
    callbacks.string = { context, pointer, length in builder(context).text(pointer, length) }
    callbacks.byte_string_start = { context in builder(context).unsupported("indefinite-length byte strings") }
    callbacks.string_start = { context in builder(context).unsupported("indefinite-length text strings") }
    callbacks.array_start = { context, count in builder(context).arrayStart(count) }
    callbacks.map_start = { context, count in builder(context).mapStart(count) }
    callbacks.indef_array_start = { context in builder(context).unsupported("indefinite-length arrays") }
    callbacks.indef_map_start = { context in builder(context).unsupported("indefinite-length maps") }
    callbacks.tag = { context, value in builder(context).tag(value) }
    callbacks.float2 = { context, value in builder(context).scalar(.float(Double(value))) }
    callbacks.float4 = { context, value in builder(context).scalar(.float(Double(value))) }
    callbacks.float8 = { context, value in builder(context).scalar(.float(value)) }
    callbacks.undefined = { context in builder(context).scalar(.undefined) }
    callbacks.null = { context in builder(context).scalar(.null) }
    callbacks.boolean = { context, value in builder(context).scalar(.bool(value)) }
    callbacks.indef_break = { context in builder(context).strayBreak() }
    return callbacks
}
