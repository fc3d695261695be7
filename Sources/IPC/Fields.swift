import CBOR

/// The wire spellings of the protocol's map keys (docs/IPC.md lists them per message).
enum IPCKey {
    static let id = "id"
    static let op = "op"
    static let reply = "reply"
    static let event = "event"
    static let error = "error"
    static let goodbye = "goodbye"

    static let minVersion = "min_version"
    static let maxVersion = "max_version"
    static let client = "client"
    static let name = "name"
    static let names = "names"
    static let mode = "mode"
    static let address = "address"
    static let readOnly = "read_only"
    static let wait = "wait"
    static let offset = "offset"
    static let data = "data"
    static let maxLength = "max_length"

    static let version = "version"
    static let daemon = "daemon"
    static let instance = "instance"
    static let features = "features"
    static let stream = "stream"
    static let streams = "streams"
    static let accepted = "accepted"
    static let end = "end"
    static let status = "status"
    static let connected = "connected"

    static let code = "code"
    static let message = "message"
    static let expectedOffset = "expected_offset"
    static let retryAfter = "retry_after_ms"

    static let role = "role"
    static let state = "state"
    static let bytesWritten = "bytes_written"
    static let bytesDurable = "bytes_durable"
    static let bytesAcked = "bytes_acked"
    static let bytesReceived = "bytes_received"
    static let bytesConsumed = "bytes_consumed"
    static let readable = "readable"
    static let writeBuffered = "write_buffered"
    static let writeClosed = "write_closed"
    static let peerClosed = "peer_closed"
    static let reason = "reason"
    static let engine = "engine"

    static let kpclientdConnected = "kpclientd_connected"
    static let kpclientd = "kpclientd"
    static let active = "active"
    static let damaged = "damaged"
    static let connections = "connections"
}

/// Typed access to the text-keyed fields of a decoded map.
///
/// Unknown keys (and non-text keys) are ignored; `null` counts as absent. Every failure is an
/// ``IPCError`` with code `invalidArgument` (or `invalidName`) naming the field and carrying
/// ``requestID`` once it is known.
struct IPCFields {
    private var values: [String: CBORValue] = [:]
    /// Stamped on every error thrown from here on.
    var requestID: UInt64?
    /// Prefix for field names in messages, such as `stream.` for a nested map.
    private var path: String = ""

    init(_ value: CBORValue, what: String, requestID: UInt64? = nil, path: String = "") throws(IPCError) {
        self.requestID = requestID
        self.path = path
        guard case .map(let entries) = value else {
            throw IPCError(path.isEmpty ? .malformed : .invalidArgument,
                           path.isEmpty ? "\(what) is not a CBOR map" : "field \(path.dropLast()) is not a map",
                           requestID: requestID)
        }
        values.reserveCapacity(entries.count)
        for entry in entries {
            if case .text(let key) = entry.key, !entry.value.isNull { values[key] = entry.value }
        }
    }

    func invalid(_ key: String, _ problem: String) -> IPCError {
        IPCError(.invalidArgument, "field \(path)\(key) \(problem)", requestID: requestID)
    }

    func has(_ key: String) -> Bool { values[key] != nil }

    func required(_ key: String) throws(IPCError) -> CBORValue {
        guard let value = values[key] else { throw invalid(key, "is missing") }
        return value
    }

    func uint(_ key: String) throws(IPCError) -> UInt64 {
        guard let value = try required(key).uint64 else { throw invalid(key, "must be an unsigned integer") }
        return value
    }

    func optionalUInt(_ key: String) throws(IPCError) -> UInt64? {
        guard has(key) else { return nil }
        return try uint(key)
    }

    func bool(_ key: String) throws(IPCError) -> Bool {
        guard let value = try required(key).bool else { throw invalid(key, "must be a boolean") }
        return value
    }

    /// A boolean that defaults to `false` when absent.
    func flag(_ key: String) throws(IPCError) -> Bool {
        guard has(key) else { return false }
        return try bool(key)
    }

    func text(_ key: String, max limit: Int) throws(IPCError) -> String {
        guard let value = try required(key).text else { throw invalid(key, "must be a text string") }
        guard value.utf8.count <= limit else { throw invalid(key, "is longer than \(limit) bytes") }
        return value
    }

    func optionalText(_ key: String, max limit: Int) throws(IPCError) -> String? {
        guard has(key) else { return nil }
        return try text(key, max: limit)
    }

    func bytes(_ key: String, max limit: Int) throws(IPCError) -> [UInt8] {
        guard let value = try required(key).bytes else { throw invalid(key, "must be a byte string") }
        guard value.count <= limit else { throw invalid(key, "is longer than \(limit) bytes") }
        return value
    }

    func bytes(_ key: String, exactly length: Int) throws(IPCError) -> [UInt8] {
        let value = try bytes(key, max: length)
        guard value.count == length else { throw invalid(key, "must be \(length) bytes long") }
        return value
    }

    func array(_ key: String, max limit: Int) throws(IPCError) -> [CBORValue] {
        guard let value = try required(key).array else { throw invalid(key, "must be an array") }
        guard value.count <= limit else { throw invalid(key, "has more than \(limit) elements") }
        return value
    }

    func map(_ key: String) throws(IPCError) -> IPCFields {
        try IPCFields(required(key), what: key, requestID: requestID, path: path + key + ".")
    }

    func name(_ key: String = IPCKey.name) throws(IPCError) -> StreamName {
        // The length rule is StreamName's, so an overlong name is `invalidName` too.
        guard let text = try required(key).text else { throw invalid(key, "must be a text string") }
        return try streamName(text)
    }

    func streamName(_ text: String) throws(IPCError) -> StreamName {
        do {
            return try StreamName(text)
        } catch {
            var error = error
            error.requestID = requestID
            throw error
        }
    }

    /// A text field holding one of `Value`'s raw values.
    func enumeration<Value: RawRepresentable>(_ key: String, _: Value.Type) throws(IPCError) -> Value where Value.RawValue == String {
        let raw = try text(key, max: IPCLimits.maxOperationLength)
        guard let value = Value(rawValue: raw) else { throw invalid(key, "has an unknown value") }
        return value
    }
}

/// Decodes a payload as one CBOR map, mapping CBOR and size failures to `malformed` and `frameTooLarge`.
func decodePayload(_ payload: [UInt8], limits: CBORDecoder.Limits, what: String) throws(IPCError) -> CBORValue {
    guard payload.count <= IPCLimits.maxFrameSize else {
        throw IPCError(.frameTooLarge, "\(what) of \(payload.count) bytes exceeds the limit of \(IPCLimits.maxFrameSize)")
    }
    do {
        return try CBORDecoder.decode(payload, limits: limits)
    } catch {
        throw IPCError(.malformed, "\(what) is not one CBOR data item (\(error.code) at byte \(error.offset))")
    }
}
