/// Repeated measurements of one quantity, summarised as median and spread.
struct Samples {
    /// The measured values, in the order taken.
    var values: [Double] = []

    /// The median value.
    var median: Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// The smallest value.
    var minimum: Double { values.min() ?? .nan }
    /// The largest value.
    var maximum: Double { values.max() ?? .nan }

    /// `median (min–max, n=N)` with `digits` decimals.
    func summary(_ digits: Int = 2) -> String {
        "\(format(median, digits)) (\(format(minimum, digits))–\(format(maximum, digits)), n=\(values.count))"
    }
}

/// Formats `value` with `digits` decimals.
func format(_ value: Double, _ digits: Int = 2) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let rounded = (abs(value) * scale).rounded() / scale
    let sign = value < 0 ? "-" : ""
    let whole = Int(rounded)
    guard digits > 0 else { return sign + "\(whole)" }
    let fraction = Int(((rounded - Double(whole)) * scale).rounded())
    var fractionText = "\(fraction)"
    while fractionText.count < digits { fractionText = "0" + fractionText }
    return sign + "\(whole).\(fractionText)"
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
