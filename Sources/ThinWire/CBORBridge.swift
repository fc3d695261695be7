import CBOR

/// The single place where ThinWire (and, through `package` access, the simulator) turns
/// ``CBORValue`` into bytes and back, using the `CBOR` module's codec.
package enum WireCBOR {
    /// The decoding limits applied to frames: depth 32 and at most 1 000 000 data items (a
    /// 40 MiB frame of one-byte items could otherwise hold 40 million).
    package static let frameLimits = CBORDecoder.Limits(maxDepth: 32, maxItems: 1_000_000)

    /// Encodes one CBOR data item.
    package static func encode(_ value: CBORValue) -> [UInt8] {
        value.encoded()
    }

    /// Appends the encoding of one CBOR data item to `buffer`.
    package static func encode(_ value: CBORValue, into buffer: inout [UInt8]) {
        value.encode(into: &buffer)
    }

    /// Decodes exactly one CBOR data item spanning all of `bytes`.
    ///
    /// - Throws: ``ThinWireError`` with code ``ThinWireError/Code-swift.struct/invalidCBOR``,
    ///   whose message carries the ``CBORError``.
    package static func decode(_ bytes: [UInt8], limits: CBORDecoder.Limits = frameLimits) throws(ThinWireError) -> CBORValue {
        do {
            return try CBORDecoder.decode(bytes, limits: limits)
        } catch {
            throw ThinWireError(.invalidCBOR, "undecodable CBOR: \(error)")
        }
    }
}
