import CSQLite
import IPC
import Logging
import StreamClient
import Testing

@testable import StreamDaemon

/// Restarting a daemon with many streams, and with one stream's stored state damaged.
@Suite(.serialized, .timeLimit(.minutes(10)))
struct RestoreTests {
    static let streamCount = 1_000

    static func name(_ index: Int) -> String {
        "s" + String(repeating: "0", count: 4 - String(index).count) + String(index)
    }

    /// Creates streams `s0000`... concurrently over a few connections; returns their addresses.
    static func createStreams(_ daemon: DaemonHarness, count: Int) async throws -> [String: String] {
        var clients: [StreamdClient] = []
        for _ in 0..<4 { clients.append(try await daemon.client()) }
        var addresses: [String: String] = [:]
        let batch = 100
        for start in stride(from: 0, to: count, by: batch) {
            try await withThrowingTaskGroup(of: (String, String).self) { group in
                for index in start..<min(start + batch, count) {
                    let client = clients[index % clients.count]
                    group.addTask {
                        let (_, address) = try await client.create(name(index))
                        return (name(index), address)
                    }
                }
                for try await (name, address) in group { addresses[name] = address }
            }
        }
        for client in clients { await client.close() }
        return addresses
    }

    /// Overwrites one stream's stored checkpoint with garbage, with the daemon stopped.
    static func damageCheckpoint(databasePath: String, stream: String) throws {
        var database: OpaquePointer?
        guard sqlite3_open_v2(databasePath, &database, SQLITE_OPEN_READWRITE, nil) == SQLITE_OK, let database else {
            throw HarnessError(description: "cannot open \(databasePath)")
        }
        defer { sqlite3_close(database) }
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(database, "UPDATE streams SET checkpoint = ?1 WHERE name = ?2", -1, &statement, nil) == SQLITE_OK else {
            throw HarnessError(description: String(cString: sqlite3_errmsg(database)))
        }
        defer { sqlite3_finalize(statement) }
        let garbage: [UInt8] = (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 89 &+ 17) }
        // SQLITE_TRANSIENT: SQLite copies the bytes.
        let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
        _ = garbage.withUnsafeBytes { sqlite3_bind_blob(statement, 1, $0.baseAddress, Int32($0.count), transient) }
        _ = sqlite3_bind_text(statement, 2, stream, -1, transient)
        guard sqlite3_step(statement) == SQLITE_DONE else {
            throw HarnessError(description: String(cString: sqlite3_errmsg(database)))
        }
        guard sqlite3_changes(database) == 1 else { throw HarnessError(description: "no row for \(stream)") }
    }

    /// Joins stream `name` from a new peer stream and shows that bytes flow both ways.
    static func showWorks(_ client: StreamdClient, _ name: String, address: String) async throws {
        let peer = "peer-" + name
        _ = try await client.join(peer, address: address)
        let there: [UInt8] = Array("hello from \(name)".utf8)
        let back: [UInt8] = Array("and back to \(name)".utf8)
        let written = try await client.status(name).bytesWritten
        _ = try await client.send(name, bytes: there, at: written)
        _ = try await client.send(peer, bytes: back, at: 0)
        #expect(try await readExactly(client, peer, from: 0, count: there.count) == there)
        let received = try await client.status(name).bytesConsumed
        #expect(try await readExactly(client, name, from: received, count: back.count) == back)
    }

    static func readExactly(_ client: StreamdClient, _ name: String, from offset: UInt64, count: Int) async throws -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < count {
            let (_, chunk, end) = try await client.read(name, offset: offset + UInt64(bytes.count), wait: true)
            bytes += chunk
            if end { break }
        }
        return bytes
    }

    @Test func aThousandStreamsSurviveARestartAndOneDamagedStreamIsQuarantined() async throws {
        let directory = TemporaryDirectory()
        var configuration = DaemonHarness.configuration(in: directory.path)
        configuration.logLevel = .critical  // the damaged stream is logged as an error on purpose
        // With the default budget (600 polls a minute for the whole daemon) each of 1,000 idle
        // streams is polled about every 100 s, so a restored listener would notice its new peer's
        // first bytes only that late; the test raises the budget tenfold to keep its run time
        // short (at 60,000 a minute the shared 2-core machine did not finish in 400 s).
        configuration.scheduler.idlePollsPerMinute = 6_000
        var daemon = try await DaemonHarness.start(configuration)
        let created = ContinuousClock.now
        let addresses = try await Self.createStreams(daemon, count: Self.streamCount)
        print("RestoreTests: created \(Self.streamCount) streams in \(ContinuousClock.now - created)")
        #expect(addresses.count == Self.streamCount)
        try await daemon.stop().get()

        // Restart: every stream is back.
        var started = ContinuousClock.now
        daemon = try await DaemonHarness.start(configuration)
        print("RestoreTests: restart to ready with \(Self.streamCount) streams: \(ContinuousClock.now - started)")
        var client = try await daemon.client()
        let list = try await client.list()
        #expect(list.count == Self.streamCount)
        #expect(list.map(\.name.rawValue) == (0..<Self.streamCount).map(Self.name))
        #expect(list.allSatisfy { $0.state == .open && $0.role == .listener })
        for index in [0, 421, 999] {
            try await Self.showWorks(client, Self.name(index), address: try #require(addresses[Self.name(index)]))
        }
        await client.close()
        try await daemon.stop().get()

        // Damage one stream's checkpoint on disk.
        let victim = Self.name(123)
        try Self.damageCheckpoint(databasePath: configuration.stateDirectory + "/streamd.sqlite3", stream: victim)

        started = ContinuousClock.now
        daemon = try await DaemonHarness.start(configuration)
        print("RestoreTests: restart to ready with one damaged stream: \(ContinuousClock.now - started)")
        client = try await daemon.client()
        let after = try await client.list()
        #expect(after.count == Self.streamCount + 3)  // the three peers joined above
        let damaged = after.filter { $0.state == .damaged }
        #expect(damaged.map(\.name.rawValue) == [victim])
        #expect(damaged.first?.reason?.isEmpty == false)
        let status = try await client.status(victim)
        #expect(status.state == .damaged)
        #expect(status.reason == damaged.first?.reason)
        // Using it says why; the address is not handed out.
        do {
            _ = try await client.write(victim, offset: 0, data: [1])
            Issue.record("a write to a damaged stream was accepted")
        } catch let error as IPCError {
            #expect(error.code == .damaged)
        }
        #expect(try await client.daemonStatus().damaged == 1)
        #expect(after.filter { $0.state == .open }.count == Self.streamCount + 2)
        // Others still work: ones not used before, and one that was.
        for index in [122, 124, 777] {
            try await Self.showWorks(client, Self.name(index), address: try #require(addresses[Self.name(index)]))
        }
        // A damaged stream can be removed, and its name used again.
        try await client.remove(victim)
        _ = try await client.create(victim)
        #expect(try await client.status(victim).state == .open)
        await client.close()
        try await daemon.stop().get()

        // The quarantine is durable: it was recorded, and after removal the stream is a new one.
        daemon = try await DaemonHarness.start(configuration)
        client = try await daemon.client()
        #expect(try await client.daemonStatus().damaged == 0)
        #expect(try await client.list().count == Self.streamCount + 6)
        await client.close()
        await daemon.stop()
    }
}
