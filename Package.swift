// swift-tools-version:6.0
import PackageDescription

/// Settings shared by every Swift target: Swift 6 language mode (strict concurrency) plus
/// upcoming features that keep the code explicit.
let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "streamd",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "CBOR", targets: ["CBOR"]),
        .library(name: "StreamCrypto", targets: ["StreamCrypto"]),
        .library(name: "StreamEngine", targets: ["StreamEngine"]),
        .library(name: "StreamEngineTesting", targets: ["StreamEngineTesting"]),
        .library(name: "IPC", targets: ["IPC"]),
        .library(name: "StreamStore", targets: ["StreamStore"]),
        .library(name: "StreamDaemon", targets: ["StreamDaemon"]),
        .library(name: "StreamClient", targets: ["StreamClient"]),
        .library(name: "ThinWire", targets: ["ThinWire"]),
        .library(name: "ThinClient", targets: ["ThinClient"]),
        .library(name: "KpclientdSim", targets: ["KpclientdSim"]),
        .library(name: "PigeonholeTransport", targets: ["PigeonholeTransport"]),
        .library(name: "SystemdSupport", targets: ["SystemdSupport"]),
        .executable(name: "streamd", targets: ["streamd"]),
        .executable(name: "kpclientd-sim", targets: ["kpclientd-sim"]),
        .executable(name: "streamctl", targets: ["streamctl"]),
        .executable(name: "streamd-benchmark", targets: ["streamd-benchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // MARK: C libraries from Debian, found with pkg-config.
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CCBOR", pkgConfig: "libcbor", providers: [.apt(["libcbor-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // A fault-injecting SQLite VFS (I/O errors, power cuts) for StreamStore's reliability tests.
        .target(name: "CSQLiteFaultVFS", dependencies: ["CSQLite"]),

        // MARK: Foundations.
        .target(name: "CBOR", dependencies: ["CCBOR"], swiftSettings: strictSettings),
        .target(name: "StreamCrypto", dependencies: ["CSodium"], swiftSettings: strictSettings),

        // MARK: The sans-I/O stream protocol and its async wrapper.
        .target(name: "StreamEngine", dependencies: ["CBOR", "StreamCrypto"], swiftSettings: strictSettings),
        .target(name: "StreamEngineTesting", dependencies: ["StreamEngine", "StreamCrypto"], swiftSettings: strictSettings),

        // MARK: The app protocol (apps <-> daemon), shared by the daemon and its clients.
        .target(name: "IPC", dependencies: ["CBOR"], swiftSettings: strictSettings),

        // MARK: The durable store (SQLite).
        .target(name: "StreamStore", dependencies: ["CSQLite", "CSQLiteFaultVFS"], swiftSettings: strictSettings),

        // MARK: kpclientd: wire format, client, simulator, and the Pigeonhole transport.
        .target(name: "ThinWire", dependencies: ["CBOR"], swiftSettings: strictSettings),
        .target(
            name: "ThinClient",
            dependencies: [
                "ThinWire", "CBOR", "StreamCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "KpclientdSim",
            dependencies: [
                "ThinWire", "CBOR", "StreamCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "PigeonholeTransport",
            dependencies: ["StreamEngine", "ThinClient", "StreamCrypto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),

        // MARK: systemd integration: sd_notify, socket activation, native journal logging.
        .target(
            name: "SystemdSupport",
            dependencies: ["CSystemd", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),

        // MARK: The daemon as a library, and its Swift client library.
        .target(
            name: "StreamDaemon",
            dependencies: [
                "StreamEngine", "PigeonholeTransport", "ThinClient", "KpclientdSim", "IPC", "StreamStore", "CBOR", "StreamCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "StreamClient",
            dependencies: [
                "IPC",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Executables.
        .executableTarget(
            name: "streamd",
            dependencies: [
                "StreamDaemon", "StreamEngine", "StreamEngineTesting", "PigeonholeTransport", "ThinClient", "KpclientdSim",
                "SystemdSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "streamctl",
            dependencies: ["StreamClient", "IPC", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "stream-benchmark",
            dependencies: ["StreamEngine", "StreamEngineTesting", "StreamCrypto"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "streamd-benchmark",
            dependencies: [
                "StreamDaemon", "StreamClient", "IPC", "StreamStore", "StreamEngine", "PigeonholeTransport", "ThinClient",
                "KpclientdSim", "StreamCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "kpclientd-sim",
            dependencies: [
                "KpclientdSim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),

        // MARK: Tests.
        .testTarget(name: "CBORTests", dependencies: ["CBOR", "CCBOR"], swiftSettings: strictSettings),
        .testTarget(name: "IPCTests", dependencies: ["IPC", "CBOR"], swiftSettings: strictSettings),
        .testTarget(name: "StreamStoreTests", dependencies: ["StreamStore", "CSQLite"], swiftSettings: strictSettings),
        .testTarget(
            name: "StreamDaemonTests",
            dependencies: [
                "StreamDaemon", "StreamClient", "IPC", "StreamStore", "StreamEngine", "KpclientdSim", "CSQLite", "CBOR", "ThinClient",
                "StreamCrypto", "PigeonholeTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "SystemdSupportTests",
            dependencies: ["SystemdSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "StreamCryptoTests", dependencies: ["StreamCrypto"], swiftSettings: strictSettings),
        .testTarget(
            name: "StreamEngineTests",
            dependencies: ["StreamEngine", "StreamEngineTesting", "CBOR", "StreamCrypto"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "ThinClientTests",
            dependencies: [
                "ThinClient", "ThinWire", "KpclientdSim", "CBOR", "StreamCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "KpclientdSimTests",
            dependencies: ["KpclientdSim", "ThinWire", "ThinClient", "CBOR"],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "PigeonholeTransportTests",
            dependencies: [
                "PigeonholeTransport", "StreamEngine", "StreamEngineTesting", "ThinClient", "KpclientdSim", "CBOR", "StreamCrypto",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)
