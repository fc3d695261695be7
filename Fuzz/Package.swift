// swift-tools-version:6.0
import PackageDescription

// libFuzzer harnesses for streamd. Kept out of the root package so the normal build stays
// sanitizer-free; build and run them with `scripts/fuzz TARGET [SECONDS]` (see README.md).

/// The root package's identity is the name of its directory (`main`, `wt-cbor`, ...), which a
/// path dependency must be referred to by.
let root: String = {
    let components = Context.packageDirectory.split(separator: "/")
    return components.count >= 2 ? String(components[components.count - 2]).lowercased() : "streamd"
}()

/// One libFuzzer executable: `Sources/<name>/<Something>.swift` (not `main.swift`) defining
/// `@_cdecl("<name with - as _>_main")` that calls `runLibFuzzer`.
func fuzzer(_ name: String, _ products: [String]) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: root) },
        swiftSettings: [.enableUpcomingFeature("ExistentialAny")]
    )
}

let package = Package(
    name: "streamd-fuzz",
    dependencies: [.package(path: "..")],
    targets: [
        .target(name: "FuzzSupport"),
        // One line per fuzzer:
        fuzzer("fuzz-cbor", ["CBOR"]),
        fuzzer("fuzz-frame", ["StreamEngine"]),
        fuzzer("fuzz-address", ["StreamEngine", "StreamCrypto"]),
        fuzzer("fuzz-checkpoint", ["StreamEngine", "StreamCrypto", "CBOR"]),
        fuzzer("fuzz-thinwire", ["ThinWire", "CBOR"]),
        fuzzer("fuzz-ipc", ["IPC", "CBOR"]),
    ]
)
