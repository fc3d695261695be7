import CBOR

/// One thin-client message: a type key and the map of fields under it.
///
/// On the wire a message is a CBOR map in which exactly one text key has a non-null value.
/// Python and Rust send one-key maps; the Go daemon and Go thin client send every key of their
/// `Request`/`Response` structs with `null` for all but one. ``init(decoding:)`` accepts both
/// forms; ``value`` always produces the one-key form.
///
/// ```swift
/// let request = ThinMessage(ThinKey.Request.newKeypair, [
///     (ThinKey.Field.queryID, .bytes(queryID)),
///     (ThinKey.Field.seed, .bytes(seed)),
/// ])
/// let frame = ThinFrame.encode(request)
/// let reply = try ThinMessage(decoding: value)
/// let writeCap = try reply.fields.bytes(ThinKey.Field.writeCap, length: ThinSizes.writeCap)
/// ```
public struct ThinMessage: Sendable, Hashable {
    /// The message-type key, for example `"new_keypair_reply"`.
    public var key: String
    /// The value under ``key``: normally a map of fields (an empty map for `thin_close`).
    public var body: CBORValue

    /// Creates a message from its key and body.
    public init(_ key: String, body: CBORValue) {
        self.key = key
        self.body = body
    }

    /// Creates a message whose body is a text-keyed map of `fields`, in the given order.
    public init(_ key: String, _ fields: [(String, CBORValue)]) {
        self.init(key, body: .textMap(fields))
    }

    /// Decodes a message by its single non-null top-level key.
    ///
    /// Keys whose value is `null` (or `undefined`) are ignored, so Go-style maps carrying every key
    /// are accepted. Non-text keys are ignored.
    ///
    /// - Throws: ``ThinWireError`` with code `notAMap` (not a map), `noMessageKey` (no non-null
    ///   text key) or `ambiguousMessage` (two or more non-null keys).
    public init(decoding value: CBORValue) throws(ThinWireError) {
        guard case .map(let entries) = value else {
            throw ThinWireError(.notAMap, "a thin message must be a CBOR map")
        }
        var found: (String, CBORValue)?
        for entry in entries {
            guard case .text(let name) = entry.key, !entry.value.isNull else { continue }
            if let first = found {
                throw ThinWireError(.ambiguousMessage, "message has several non-null keys: \(first.0), \(name)")
            }
            found = (name, entry.value)
        }
        guard let (key, body) = found else {
            throw ThinWireError(.noMessageKey, "message map has no non-null key")
        }
        self.init(key, body: body)
    }

    /// Decodes one frame body (CBOR bytes without the length prefix) into a message.
    public init(frameBody: [UInt8]) throws(ThinWireError) {
        try self.init(decoding: ThinFrame.decodeBody(frameBody))
    }

    /// The one-key map `{key: body}` to send.
    public var value: CBORValue { .map([CBORMapEntry(.text(key), body)]) }

    /// The complete frame (length prefix plus CBOR) for this message.
    public var frame: [UInt8] { ThinFrame.encode(value) }

    /// Typed access to the fields of ``body``.
    public var fields: ThinFields { ThinFields(body, context: key) }
}

/// Typed, length-checked access to the fields of a message or nested map.
///
/// Absent and `null` fields are treated alike. Every accessor that requires a value throws a
/// ``ThinWireError`` naming the field; the `optional…` variants return `nil` for an absent or
/// `null` field but still throw for a present field of the wrong type or length.
public struct ThinFields: Sendable, Hashable {
    /// The map (or other value) being read.
    public let value: CBORValue
    /// A label used in error messages, such as the message key.
    public let context: String

    /// Wraps `value` for typed access; `context` names it in errors.
    public init(_ value: CBORValue, context: String) {
        self.value = value
        self.context = context
    }

    /// The raw value of `key`, or `nil` if it is absent or `null`.
    public func raw(_ key: String) -> CBORValue? {
        guard let v = value[key], !v.isNull else { return nil }
        return v
    }

    /// Whether `key` is present with a non-null value.
    public func contains(_ key: String) -> Bool { raw(key) != nil }

    private func required(_ key: String) throws(ThinWireError) -> CBORValue {
        guard case .map = value else { throw ThinWireError(.notAMap, "\(context) is not a map") }
        guard let v = raw(key) else { throw ThinWireError(.missingField, "\(context).\(key) is missing or null") }
        return v
    }

    private func typeError(_ key: String, _ expected: String) -> ThinWireError {
        ThinWireError(.wrongType, "\(context).\(key) must be \(expected)")
    }

    /// A required byte string, of exactly `length` bytes when `length` is given.
    public func bytes(_ key: String, length: Int? = nil) throws(ThinWireError) -> [UInt8] {
        guard let b = try required(key).bytes else { throw typeError(key, "a byte string") }
        if let length, b.count != length {
            throw ThinWireError(.wrongLength, "\(context).\(key) must be \(length) bytes, got \(b.count)")
        }
        return b
    }

    /// An optional byte string, of exactly `length` bytes when present and `length` is given.
    public func optionalBytes(_ key: String, length: Int? = nil) throws(ThinWireError) -> [UInt8]? {
        guard contains(key) else { return nil }
        return try bytes(key, length: length)
    }

    /// A required unsigned integer.
    public func uint(_ key: String) throws(ThinWireError) -> UInt64 {
        guard let v = try required(key).uint64 else { throw typeError(key, "an unsigned integer") }
        return v
    }

    /// An optional unsigned integer.
    public func optionalUInt(_ key: String) throws(ThinWireError) -> UInt64? {
        guard contains(key) else { return nil }
        return try uint(key)
    }

    /// A required signed integer (unsigned or negative CBOR integer fitting `Int64`).
    public func int(_ key: String) throws(ThinWireError) -> Int64 {
        guard let v = try required(key).int64 else { throw typeError(key, "an integer") }
        return v
    }

    /// A required Boolean.
    public func bool(_ key: String) throws(ThinWireError) -> Bool {
        guard let v = try required(key).bool else { throw typeError(key, "a Boolean") }
        return v
    }

    /// An optional Boolean; `nil` when absent or null.
    public func optionalBool(_ key: String) throws(ThinWireError) -> Bool? {
        guard contains(key) else { return nil }
        return try bool(key)
    }

    /// A required text string.
    public func text(_ key: String) throws(ThinWireError) -> String {
        guard let v = try required(key).text else { throw typeError(key, "a text string") }
        return v
    }

    /// An optional text string.
    public func optionalText(_ key: String) throws(ThinWireError) -> String? {
        guard contains(key) else { return nil }
        return try text(key)
    }

    /// A required array.
    public func array(_ key: String) throws(ThinWireError) -> [CBORValue] {
        guard let v = try required(key).array else { throw typeError(key, "an array") }
        return v
    }

    /// An optional array.
    public func optionalArray(_ key: String) throws(ThinWireError) -> [CBORValue]? {
        guard contains(key) else { return nil }
        return try array(key)
    }

    /// A required nested map, wrapped for typed access.
    public func map(_ key: String) throws(ThinWireError) -> ThinFields {
        let v = try required(key)
        guard case .map = v else { throw typeError(key, "a map") }
        return ThinFields(v, context: "\(context).\(key)")
    }

    /// The required 16-byte `query_id`.
    public func queryID() throws(ThinWireError) -> [UInt8] {
        try bytes(ThinKey.Field.queryID, length: ThinSizes.queryID)
    }

    /// The `error_code` as a raw `UInt8`; `0` when absent.
    ///
    /// - Throws: ``ThinWireError/Code-swift.struct/wrongType`` if present but not an integer in 0...255.
    public func errorCode() throws(ThinWireError) -> UInt8 {
        guard let raw = try optionalUInt(ThinKey.Field.errorCode) else { return 0 }
        guard raw <= UInt64(UInt8.max) else { throw typeError(ThinKey.Field.errorCode, "an integer in 0...255") }
        return UInt8(raw)
    }
}
