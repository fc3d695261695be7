import ArgumentParser
import IPC
import StreamClient

#if canImport(Glibc)
import Glibc
#endif

/// Options of the commands that move data.
struct TransferOptions: ParsableArguments {
    @Option(help: "Seconds to keep reconnecting if streamd restarts during the transfer.")
    var reconnectTimeout = 60

    @Flag(help: "Never show a progress bar (it is shown only when stderr is a terminal).")
    var quiet = false
}

/// A connection that reconnects when streamd restarts, so a transfer can resume at its offset.
actor ResilientClient {
    private let options: CommonOptions
    private let timeout: Duration
    private var client: StreamdClient?

    init(options: CommonOptions, reconnectTimeout: Int) {
        self.options = options
        self.timeout = .seconds(reconnectTimeout)
    }

    /// Runs `body` on a connected client; after a lost connection, reconnects and runs it again.
    ///
    /// `body` must be safe to repeat: every data operation carries its offset, so it is.
    func run<T: Sendable>(_ body: @Sendable (StreamdClient) async throws -> T) async throws -> T {
        let clock = ContinuousClock()
        var deadline: ContinuousClock.Instant?
        var delay = Duration.milliseconds(100)
        while true {
            do {
                let client = try await connected()
                return try await body(client)
            } catch let error as StreamClientError {
                client = nil
                let limit = deadline ?? clock.now + timeout
                deadline = limit
                guard clock.now < limit else { throw error }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    private func connected() async throws -> StreamdClient {
        if let client { return client }
        let fresh = try await StreamdClient.connect(socketPath: options.socketPath, clientName: "streamctl")
        client = fresh
        return fresh
    }

    func close() async {
        await client?.close()
    }
}

/// `streamctl send NAME [FILE]`.
struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send FILE (or stdin) on a stream; returns once every byte is durable in streamd.",
        discussion: "If streamd restarts meanwhile, send reconnects and resumes at its offset: nothing is lost or sent twice.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var transfer: TransferOptions
    @Argument(help: "The stream.")
    var name: String
    @Argument(help: "The file to send; stdin if omitted.")
    var file: String?
    @Flag(help: "Also wait until the peer acknowledged every byte.")
    var sync = false

    /// Writes kept in flight on the connection (each of up to 256 KiB, each answered once durable).
    static let depth = 4

    func run() async throws {
        try await reporting {
            let input = try InputFile(path: file)
            defer { input.close() }
            let session = ResilientClient(options: options, reconnectTimeout: transfer.reconnectTimeout)
            let name = self.name
            let base = try await session.run { try await $0.status(name).bytesWritten }
            var position = base
            let progress = Progress(label: name, verb: "sent", enabled: !transfer.quiet && isatty(2) == 1)
            while true {
                // Each block goes out as `Send.depth` pipelined writes; after a lost connection
                // the block is sent again from its start (the bytes already held are skipped).
                let block = try input.read(maxLength: Self.depth * IPCLimits.maxChunk)
                if block.isEmpty { break }
                let offset = position
                position = try await session.run { try await $0.send(name, bytes: block, at: offset, depth: Self.depth) }
                if progress.isDue {
                    let acked = try? await session.run { try await $0.status(name).bytesAcked }
                    progress.update(position - base, acknowledged: acked.map { $0 > base ? $0 - base : 0 })
                }
            }
            if sync {
                try await session.run { try await $0.sync(name) }
            }
            progress.finish(position - base)
            if options.json { print(JSON.object([("sent", "\(position - base)"), ("offset", "\(position)")])) }
            await session.close()
        }
    }
}

/// `streamctl recv NAME [FILE]`.
struct Recv: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Receive a stream into FILE (or stdout) until the peer closes its direction.",
        discussion: "Data is confirmed to streamd (consumed) only after it is written out; if streamd restarts, recv resumes at its offset.")

    @OptionGroup var options: CommonOptions
    @OptionGroup var transfer: TransferOptions
    @Argument(help: "The stream.")
    var name: String
    @Argument(help: "The file to write (created or truncated); stdout if omitted.")
    var file: String?

    func run() async throws {
        try await reporting {
            let output = try OutputFile(path: file)
            let session = ResilientClient(options: options, reconnectTimeout: transfer.reconnectTimeout)
            let name = self.name
            let base = try await session.run { try await $0.status(name).bytesConsumed }
            var offset = base
            let progress = Progress(label: name, verb: "received", enabled: !transfer.quiet && isatty(2) == 1)
            while true {
                let position = offset
                let (_, bytes, end) = try await session.run { try await $0.read(name, offset: position, wait: true) }
                if !bytes.isEmpty {
                    try output.write(bytes)
                    offset += UInt64(bytes.count)
                    let through = offset
                    try await session.run { try await $0.consume(name, through: through) }
                    progress.update(offset - base)
                }
                if end { break }
            }
            try output.finish()
            progress.finish(offset - base)
            await session.close()
        }
    }
}

/// A file or stdin, read in chunks.
final class InputFile {
    private let descriptor: Int32
    private let path: String

    init(path: String?) throws {
        guard let path else {
            descriptor = 0
            self.path = "stdin"
            return
        }
        let opened = open(path, O_RDONLY | O_CLOEXEC)
        guard opened >= 0 else { throw Failure(description: "cannot open \(path): \(String(cString: strerror(errno)))", exitCode: 74) }
        descriptor = opened
        self.path = path
    }

    func read(maxLength: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maxLength)
        var filled = 0
        while filled < maxLength {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress! + filled, maxLength - filled) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot read \(path): \(String(cString: strerror(errno)))", exitCode: 74)
            }
            if count == 0 { break }
            filled += count
        }
        buffer.removeLast(maxLength - filled)
        return buffer
    }

    func close() {
        if descriptor != 0 { _ = Glibc.close(descriptor) }
    }
}

/// A file or stdout, written fully and synced at the end.
final class OutputFile {
    private let descriptor: Int32
    private let path: String

    init(path: String?) throws {
        guard let path else {
            descriptor = 1
            self.path = "stdout"
            return
        }
        let opened = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard opened >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))", exitCode: 74) }
        descriptor = opened
        self.path = path
    }

    func write(_ bytes: [UInt8]) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))", exitCode: 74)
            }
            written += count
        }
    }

    func finish() throws {
        guard descriptor != 1 else { return }
        guard fsync(descriptor) == 0, Glibc.close(descriptor) == 0 else {
            throw Failure(description: "cannot finish \(path): \(String(cString: strerror(errno)))", exitCode: 74)
        }
    }
}

/// A one-line progress display on stderr: bytes and rate.
final class Progress {
    private let label: String
    private let verb: String
    private let enabled: Bool
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var shownAt: ContinuousClock.Instant

    init(label: String, verb: String, enabled: Bool) {
        self.label = label
        self.verb = verb
        self.enabled = enabled
        start = clock.now
        shownAt = start
    }

    /// Whether a new line is due (at most four a second).
    var isDue: Bool { enabled && clock.now - shownAt >= .milliseconds(250) }

    /// Shows the bytes moved so far and, for a sender, how many the peer acknowledged.
    func update(_ bytes: UInt64, acknowledged: UInt64? = nil) {
        guard isDue else { return }
        shownAt = clock.now
        show(bytes, acknowledged: acknowledged, final: false)
    }

    func finish(_ bytes: UInt64) {
        guard enabled else { return }
        show(bytes, acknowledged: nil, final: true)
    }

    private func show(_ bytes: UInt64, acknowledged: UInt64?, final: Bool) {
        let elapsed = max(0.001, Double((clock.now - start).components.seconds) + Double((clock.now - start).components.attoseconds) / 1e18)
        let rate = Double(bytes) / elapsed
        let acked = acknowledged.map { ", \(Self.size(Double($0))) acknowledged by the peer" } ?? ""
        let line = "\r\(label): \(Self.size(Double(bytes))) \(verb), \(Self.size(rate))/s\(acked)\u{1B}[K" + (final ? "\n" : "")
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    static func size(_ value: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var amount = value
        var unit = 0
        while amount >= 1024, unit < units.count - 1 {
            amount /= 1024
            unit += 1
        }
        return unit == 0 ? "\(Int(amount)) B" : "\((amount * 10).rounded() / 10) \(units[unit])"
    }
}
