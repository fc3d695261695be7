#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer's entry point for programs that bring their own `main`
/// (`int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*cb)(const uint8_t *, size_t))`).
@_silgen_name("LLVMFuzzerRunDriver")
private func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// Hands control to libFuzzer, which parses the command line and calls `testOneInput` for
/// every input; returns libFuzzer's exit status.
///
/// Call it from the fuzzer's `@_cdecl("<target>_main")` function, which SwiftPM on Linux
/// uses as the executable's entry point. `testOneInput` must return 0.
public func runLibFuzzer(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
    _ testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt {
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// Views libFuzzer's input as a byte buffer (empty inputs may come with a null pointer).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: size > 0 ? data : nil, count: size)
}

/// Handles `TARGET -write_seeds=DIR`: writes `seeds()` to `DIR/seed-001`, `DIR/seed-002`, ...
/// and returns `true`; returns `false` (doing nothing) for any other command line.
///
/// Harnesses make their committed seeds this way, from the real encoders they link anyway, so
/// `Fuzz/seeds/TARGET/` can be regenerated after a format change.
public func writeSeedsIfRequested(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>, _ seeds: () -> [[UInt8]]
) -> Bool {
    let flag = "-write_seeds="
    guard argc == 2, let raw = argv[1] else { return false }
    let argument = String(cString: raw)
    guard argument.hasPrefix(flag) else { return false }
    let directory = String(argument.dropFirst(flag.count))
    for (number, seed) in seeds().enumerated() {
        let digits = String(number + 1)
        let path = directory + "/seed-" + String(repeating: "0", count: max(0, 3 - digits.count)) + digits
        guard let file = fopen(path, "wb") else { fatalError("cannot create \(path)") }
        let written = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        precondition(written == seed.count && fclose(file) == 0, "cannot write \(path)")
    }
    return true
}
