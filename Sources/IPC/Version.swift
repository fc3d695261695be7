/// Protocol versions and their negotiation.
///
/// A client offers a range `clientMin...clientMax` in `hello`; the daemon picks the highest
/// version both support.
public enum IPCVersion {
    /// The version this module speaks.
    public static let current: UInt64 = 1
    /// Every version this module can speak.
    public static let supported: ClosedRange<UInt64> = 1...1

    /// The highest version in both `clientMin...clientMax` and ``supported``, or `nil` if the
    /// ranges do not overlap (or the client's range is empty).
    public static func negotiate(clientMin: UInt64, clientMax: UInt64) -> UInt64? {
        guard clientMin <= clientMax else { return nil }
        let low = max(clientMin, supported.lowerBound)
        let high = min(clientMax, supported.upperBound)
        return low <= high ? high : nil
    }
}
