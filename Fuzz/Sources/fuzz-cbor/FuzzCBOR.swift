import CBOR
import FuzzSupport

/// Decodes arbitrary bytes with small and default limits; whatever decodes must re-encode and
/// re-decode to the same value and the same bytes.
@_cdecl("fuzz_cbor_main")
func fuzzCBORMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    runLibFuzzer(argc, argv) { data, size in
        let input = fuzzInput(data, size)
        check(input, limits: CBORDecoder.Limits(maxDepth: 4, maxItems: 64))
        check(input, limits: CBORDecoder.Limits())
        return 0
    }
}

private func check(_ input: UnsafeRawBufferPointer, limits: CBORDecoder.Limits) {
    let prefix: (value: CBORValue, consumed: Int)
    do {
        prefix = try CBORDecoder.decodePrefix(input, limits: limits)
    } catch {
        precondition(error.offset >= 0 && error.offset <= input.count, "error offset out of range: \(error)")
        // decode must fail too, for the same reason unless only the trailing bytes differ.
        if (try? CBORDecoder.decode(input, limits: limits)) != nil {
            preconditionFailure("decode accepted what decodePrefix rejected: \(error)")
        }
        return
    }
    precondition(prefix.consumed > 0 && prefix.consumed <= input.count, "bad consumed count")

    // decode agrees with decodePrefix.
    let whole = Result { () throws(CBORError) -> CBORValue in try CBORDecoder.decode(input, limits: limits) }
    switch whole {
    case .success(let value):
        precondition(prefix.consumed == input.count, "decode accepted trailing bytes")
        precondition(sameValue(value, prefix.value), "decode and decodePrefix disagree")
    case .failure(let error):
        precondition(error.code == .trailingBytes && error.offset == prefix.consumed, "unexpected decode error \(error)")
    }

    let encoded = prefix.value.encoded()
    precondition(encoded.count == prefix.value.encodedLength, "encodedLength disagrees with encoded()")
    let again: CBORValue
    do {
        again = try CBORDecoder.decode(encoded, limits: limits)
    } catch {
        preconditionFailure("re-decoding our own encoding failed: \(error)")
    }
    precondition(sameValue(again, prefix.value), "round trip changed the value")
    precondition(again.encoded() == encoded, "round trip changed the bytes")
}

/// `==`, except that NaN floats (which never equal themselves) are compared by their encoding.
private func sameValue(_ a: CBORValue, _ b: CBORValue) -> Bool {
    a == b || a.encoded() == b.encoded()
}
