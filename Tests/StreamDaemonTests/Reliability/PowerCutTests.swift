import Foundation
import IPC
import KpclientdSim
import Logging
import StreamClient
import StreamDaemon
import StreamStore
import Synchronization
import Testing

/// Power cuts (issue 10): two in-process daemons (real sockets, real SQLite files) transfer several
/// streams through an in-process kpclientd-sim; at random moments one daemon's disk loses every
/// write not covered by an fsync (sometimes a torn last write), through `StoreFaultInjector`, and
/// the daemon restarts on the same state directory. After each restart every byte acknowledged to
/// the sending app must still be there, and the receiving app must get every byte once, in order.
///
/// `STREAMD_RELIABILITY=full` runs 200 cuts (CI: 8); `STREAMD_RELIABILITY_SEED=N` replays a schedule.
@Suite(.serialized, .timeLimit(.minutes(30)))
struct PowerCutTests {
    /// What the apps know, shared by the writer and reader tasks.
    final class Ledger: Sendable {
        struct State {
            /// Per stream: the end of what `write` acknowledged to the sending app.
            var acknowledged: [UInt64]
            /// Per stream: the end of what the receiving app processed and `consume` confirmed.
            var consumed: [UInt64]
            /// Per stream: the end of what the receiving app has read (processed or not).
            var read: [UInt64]
            var mismatches: [String] = []
            /// Errors the daemon answered the apps' requests with (the connection closing is not one).
            var errors: [String: Int] = [:]
        }

        let state: Mutex<State>

        init(streams: Int) {
            state = Mutex(State(acknowledged: Array(repeating: 0, count: streams), consumed: Array(repeating: 0, count: streams),
                                read: Array(repeating: 0, count: streams)))
        }

        func snapshot() -> State { state.withLock { $0 } }
    }

    static func streamName(_ index: Int) -> String { "pc\(index)" }

    /// Writes the pattern to every stream from where daemon A has it, until the client is closed.
    static func writer(_ client: StreamdClient, stream: Int, ledger: Ledger, seed: UInt64) async {
        var random = SeededGenerator(seed: seed)
        let name = streamName(stream)
        guard var position = try? await client.status(name).bytesWritten else { return }
        while !Task.isCancelled {
            // Keep at most 96 KB in flight per stream, so the transfer drains within the test.
            let backlog = ledger.state.withLock { $0.acknowledged[stream] - min($0.acknowledged[stream], $0.consumed[stream]) }
            if backlog > 96_000 {
                try? await Task.sleep(for: .milliseconds(20))
                // A request that fails once the client is closed ends the writer.
                guard (try? await client.status(name)) != nil else { return }
                continue
            }
            let count = Int.random(in: 256...12_000, using: &random)
            let data = StreamPattern.bytes(stream: stream, offset: position, count: count)
            do {
                let result = try await client.write(name, offset: position, data: data)
                position = result.offset
                ledger.state.withLock { $0.acknowledged[stream] = max($0.acknowledged[stream], position) }
            } catch let error as IPCError where error.code == .busy {
                try? await Task.sleep(for: .milliseconds(20))
            } catch let error as IPCError {
                ledger.state.withLock { $0.errors["writer \(error.code)", default: 0] += 1 }
                try? await Task.sleep(for: .milliseconds(50))
                guard let resumed = try? await client.status(name).bytesWritten else { return }
                position = resumed
            } catch {
                return
            }
        }
    }

    /// Reads every stream on daemon B from the last consumed offset, checks each byte against the
    /// pattern, and consumes it; until the client is closed.
    static func reader(_ client: StreamdClient, stream: Int, ledger: Ledger) async {
        let name = streamName(stream)
        /// Where to read from: the daemon's consumed offset. It may be ahead of the last consume
        /// the app saw acknowledged (the daemon committed it, the reply was lost), never ahead of
        /// what the app has read.
        func resume() async -> UInt64? {
            guard let consumed = try? await client.status(name).bytesConsumed else { return nil }
            return ledger.state.withLock { state in
                if consumed > state.read[stream] {
                    state.mismatches.append("\(name): the daemon consumed through \(consumed), the app only read \(state.read[stream])")
                }
                state.consumed[stream] = max(state.consumed[stream], consumed)
                return consumed
            }
        }
        guard var position = await resume() else { return }
        while !Task.isCancelled {
            do {
                let (start, bytes, _) = try await client.read(name, offset: position, wait: true)
                if start != position {
                    ledger.state.withLock { $0.mismatches.append("\(name): read at \(position) returned bytes from \(start)") }
                    return
                }
                if let bad = StreamPattern.firstMismatch(stream: stream, offset: start, bytes: bytes) {
                    ledger.state.withLock { $0.mismatches.append("\(name): wrong byte at offset \(bad)") }
                    return
                }
                position += UInt64(bytes.count)
                ledger.state.withLock { $0.read[stream] = max($0.read[stream], position) }
                if bytes.isEmpty { continue }
                try await client.consume(name, through: position)
                ledger.state.withLock { $0.consumed[stream] = max($0.consumed[stream], position) }
            } catch let error as IPCError {
                // Refused (not a closed connection): count it, start again from the daemon's consumed offset.
                ledger.state.withLock { $0.errors["reader \(error.code)", default: 0] += 1 }
                try? await Task.sleep(for: .milliseconds(50))
                guard let resumed = await resume() else { return }
                position = resumed
            } catch {
                return
            }
        }
    }

    /// One daemon of the pair with its current fault injector.
    final class Node: @unchecked Sendable {
        let name: String
        let configuration: DaemonConfiguration
        var daemon: DaemonHarness?
        var faults: StoreFaultInjector?

        init(name: String, configuration: DaemonConfiguration) {
            self.name = name
            self.configuration = configuration
        }

        func start() async throws -> Duration {
            let clock = ContinuousClock()
            let began = clock.now
            let faults = try StoreFaultInjector()
            daemon = try await DaemonHarness.start(configuration, storeFaults: faults)
            self.faults = faults
            return clock.now - began
        }
    }

    @Test func acknowledgedBytesSurvivePowerCuts() async throws {
        let seed = Reliability.seed()
        var random = SeededGenerator(seed: seed)
        let cuts = ProcessInfo.processInfo.environment["STREAMD_RELIABILITY_CUTS"].flatMap { Int($0) } ?? Reliability.size(quick: 8, full: 200)
        let streams = Reliability.size(quick: 2, full: 4)
        print("[power-cuts] seed \(seed) (replay with STREAMD_RELIABILITY_SEED=\(seed)), \(cuts) cuts, \(streams) streams")

        let (simulator, endpoint) = try await InProcessSimulator.start(latency: .milliseconds(2))
        let directory = TemporaryDirectory()
        var nodes: [Node] = []
        for name in ["a", "b"] {
            var configuration = DaemonHarness.configuration(in: directory.path + "/" + name)
            configuration.kpclientd = endpoint
            configuration.logLevel = .critical
            nodes.append(Node(name: name, configuration: configuration))
        }
        let (a, b) = (nodes[0], nodes[1])
        _ = try await a.start()
        _ = try await b.start()
        do {
            let clientA = try await a.daemon!.client()
            let clientB = try await b.daemon!.client()
            for stream in 0..<streams {
                let (_, address) = try await clientA.create(Self.streamName(stream))
                _ = try await clientB.join(Self.streamName(stream), address: address)
            }
            await clientA.close()
            await clientB.close()
        }

        let ledger = Ledger(streams: streams)
        var atRisk: [Double] = []
        var undone: [Double] = []
        var restartTimes: [Double] = []
        var losses: [String] = []
        var quarantined: [String] = []
        var torn = 0
        var armedCuts = 0
        var cutsDone = 0
        let clock = ContinuousClock()
        let began = clock.now

        while cutsDone < cuts {
            // Apps on both daemons: a writer per stream on A, a reader per stream on B.
            let clientsA = try await (0..<streams).asyncMap { _ in try await a.daemon!.client() }
            let clientsB = try await (0..<streams).asyncMap { _ in try await b.daemon!.client() }
            var workers: [Task<Void, Never>] = []
            for stream in 0..<streams {
                let writerSeed = random.next()
                workers.append(Task { await Self.writer(clientsA[stream], stream: stream, ledger: ledger, seed: writerSeed) })
                workers.append(Task { await Self.reader(clientsB[stream], stream: stream, ledger: ledger) })
            }

            try await Task.sleep(for: .milliseconds(Int.random(in: 100...600, using: &random)))
            let victim = Bool.random(using: &random) ? a : b
            let faults = try #require(victim.faults)
            let tear = Bool.random(using: &random)
            if tear { torn += 1 }
            // Half the cuts are armed at a random coming fsync (before or after it), half happen now.
            if Bool.random(using: &random) {
                faults.cutPowerAtSync(nth: Int.random(in: 1...6, using: &random), timing: Bool.random(using: &random) ? .beforeSync : .afterSync,
                                      tearLastWrite: tear, seed: random.next())
                let deadline = clock.now + .seconds(3)
                while !faults.isPowerCut, clock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
                if faults.isPowerCut { armedCuts += 1 }
            }
            let snapshot = ledger.snapshot()
            if !faults.isPowerCut {
                undone.append(Double(try faults.simulatePowerCut(tearLastWrite: tear, seed: random.next())))
            }
            atRisk.append(Double(zip(snapshot.acknowledged, snapshot.consumed).map { $0 - min($0, $1) }.reduce(0, +)))
            cutsDone += 1

            // The process is gone: stop the victim (its commits fail from now on), drop every app.
            _ = await victim.daemon?.stop()
            for client in clientsA + clientsB { await client.close() }
            for worker in workers { await worker.value }
            restartTimes.append(milliseconds(try await victim.start()))

            // Invariants after the restart.
            let check = try await victim.daemon!.client()
            let after = ledger.snapshot()
            for info in try await check.list() where info.state == .damaged {
                quarantined.append("cut \(cutsDone): \(info.name.rawValue) \(info.reason ?? "")")
            }
            for stream in 0..<streams {
                let status = try await check.status(Self.streamName(stream))
                if victim === a, status.bytesWritten < after.acknowledged[stream] {
                    losses.append("cut \(cutsDone): \(Self.streamName(stream)) has \(status.bytesWritten) bytes, \(after.acknowledged[stream]) were acknowledged")
                }
                if victim === b, status.bytesConsumed < after.consumed[stream] {
                    losses.append("cut \(cutsDone): \(Self.streamName(stream)) consumed \(status.bytesConsumed), the app had consumed \(after.consumed[stream])")
                }
            }
            await check.close()
            if !after.mismatches.isEmpty || !losses.isEmpty { break }
        }

        // Drain: every acknowledged byte must reach the reader.
        let final = ledger.snapshot()
        let drainClients = try await (0..<streams).asyncMap { _ in try await b.daemon!.client() }
        let readers = (0..<streams).map { stream in Task { await Self.reader(drainClients[stream], stream: stream, ledger: ledger) } }
        let drained = await waitUntil(timeout: .seconds(120)) {
            let now = ledger.snapshot()
            return (0..<streams).allSatisfy { now.consumed[$0] >= final.acknowledged[$0] } || !now.mismatches.isEmpty
        }
        for client in drainClients { await client.close() }
        for reader in readers { await reader.value }
        let end = ledger.snapshot()
        for stream in 0..<streams where end.consumed[stream] < final.acknowledged[stream] {
            losses.append("\(Self.streamName(stream)): \(final.acknowledged[stream] - end.consumed[stream]) acknowledged bytes never arrived")
        }
        let elapsed = clock.now - began
        if drained == nil {
            for (node, label) in [(a, "a"), (b, "b")] {
                let probe = try await node.daemon!.client()
                for info in try await probe.list() {
                    print("[power-cuts] not drained: \(label) \(info.name.rawValue) \(info.state) written \(info.bytesWritten) acked \(info.bytesAcked) "
                        + "received \(info.bytesReceived) consumed \(info.bytesConsumed) readable \(info.readable) \(info.reason ?? "")")
                }
                await probe.close()
            }
        }
        _ = await a.daemon?.stop()
        _ = await b.daemon?.stop()
        await simulator.shutdown()

        let delivered = end.consumed.reduce(0, +)
        Reliability.report("power-cuts", "cuts=\(cutsDone) (armed at an fsync: \(armedCuts), torn: \(torn)) streams=\(streams) seed=\(seed)")
        Reliability.report("power-cuts", "bytes acknowledged=\(final.acknowledged.reduce(0, +)) delivered=\(delivered) in \(Int(seconds(elapsed))) s")
        Reliability.report("power-cuts", "bytes at risk per cut (acknowledged, not yet consumed): \(Summary(atRisk))")
        Reliability.report("power-cuts", "unsynced writes undone per immediate cut: \(Summary(undone))")
        Reliability.report("power-cuts", "restart to ready ms: \(Summary(restartTimes))")
        Reliability.report("power-cuts", "errors answered to the apps: \(end.errors.sorted { $0.key < $1.key }.map { "\($0.value)× \($0.key)" }.joined(separator: ", "))")
        Reliability.report("power-cuts", "losses=\(losses.count) mismatches=\(end.mismatches.count) quarantined=\(quarantined.count) drained=\(drained != nil)")
        for line in losses + end.mismatches + quarantined { print("[power-cuts] \(line)") }
        #expect(losses.isEmpty)
        #expect(end.mismatches.isEmpty)
        #expect(quarantined.isEmpty)
        #expect(drained != nil)
        #expect(delivered > 0)
    }
}

extension Range where Bound == Int {
    /// Maps each element with an async throwing transform, in order.
    func asyncMap<T>(_ transform: (Int) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
