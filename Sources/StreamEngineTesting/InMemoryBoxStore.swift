#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StreamCrypto
import StreamEngine
import Synchronization

/// An in-memory ``BoxStore`` with Pigeonhole's semantics and knobs for loss and latency.
///
/// Boxes are write-once (an identical rewrite succeeds, a different one fails with
/// ``BoxTransportError/Code-swift.struct/alreadyExists``). A channel opened with a writer seed
/// reads and writes the namespace `SHA-256("streamd in-memory box store" ‖ seed)`, which is
/// also its read locator; a channel opened with the locator can only read.
///
/// With ``Configuration/writeLoss`` a write is acknowledged but never stored, as when a
/// courier acknowledges a box the replicas then lose: only end-to-end retransmission recovers.
public final class InMemoryBoxStore: BoxStore {
    /// The store's behaviour.
    public struct Configuration: Sendable {
        /// The exact size of every box.
        public var payloadSize = 1024
        /// Probability that a write is acknowledged but not stored.
        public var writeLoss = 0.0
        /// Probability that a read fails with a transient error.
        public var readLoss = 0.0
        /// Mean of the exponentially distributed delay added to every operation.
        public var meanLatency: Duration = .zero
        /// How long a waiting read waits for an empty box before answering "not yet written".
        public var waitTimeout: Duration = .seconds(30)
        /// The most boxes the store holds before writes fail with `unavailable`.
        public var maxBoxes = 1 << 20
        /// Seed of the loss and latency generator.
        public var seed: UInt64 = 1
        /// If set, a channel forgets its boxes more than this many below its highest written
        /// box, and reading or writing one of them fails (``BoxTransportError/Code-swift.struct/failed``).
        ///
        /// For measuring what a stream costs over a long transfer: a store that keeps every box
        /// grows the heap page by page, and the page faults are billed to the stream. Pigeonhole
        /// keeps boxes far away, so a real stream never pays them. `nil` (the default) keeps all.
        public var forgetsBoxesBehind: Int?

        /// Creates a configuration with the defaults: lossless, instant, 1024-byte boxes.
        public init() {}
    }

    /// Counters for tests and benchmarks.
    public struct Statistics: Sendable, Hashable {
        /// Writes that reached the store (lost ones included).
        public var writes = 0
        /// Writes acknowledged but dropped.
        public var lostWrites = 0
        /// Writes of different bytes to an existing box.
        public var conflictingWrites = 0
        /// Reads performed.
        public var reads = 0
        /// Boxes stored (less those forgotten, see ``Configuration/forgetsBoxesBehind``).
        public var boxes = 0
    }

    let configuration: Configuration
    /// Everything mutable, behind one lock: operations complete inside the call that starts
    /// them (no task, no hop to another executor), and a write answers the reads waiting on
    /// its box in the writer's own call.
    private let state: Mutex<State>

    /// Creates an empty store.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        state = Mutex(State(configuration: configuration))
    }

    public func payloadSize() async throws -> Int { configuration.payloadSize }

    public func channel(_ credential: BoxChannelCredential) async throws -> any BoxChannel {
        switch credential {
        case .writerSeed(let seed):
            guard seed.count == 32 else { throw BoxTransportError(.permissionDenied, "a writer seed is 32 bytes") }
            let locator = Self.locator(seed)
            return Channel(store: self, namespace: state.withLock { $0.namespace(locator) }, canWrite: true)
        case .readLocator(let locator):
            guard locator.count == 32 else { throw BoxTransportError(.permissionDenied, "unknown read locator format") }
            return Channel(store: self, namespace: state.withLock { $0.namespace(locator) }, canWrite: false)
        }
    }

    public func readLocator(forWriterSeed seed: [UInt8]) async throws -> [UInt8] { Self.locator(seed) }

    /// The store's counters.
    public func statistics() async -> Statistics { state.withLock { $0.statistics } }

    static func locator(_ seed: [UInt8]) -> [UInt8] { SHA256.hash(Array("streamd in-memory box store".utf8) + seed) }

    private struct Channel: BoxChannel {
        let store: InMemoryBoxStore
        /// The store's number for the channel's locator.
        let namespace: Int
        let canWrite: Bool

        var payloadSize: Int { store.configuration.payloadSize }

        /// Completes inline unless the store adds latency (then a task sleeps first).
        func startWrite(
            index: UInt64, bytes: [UInt8], completion: @escaping @Sendable (Result<Void, BoxTransportError>) -> Void
        ) -> BoxOperation {
            guard canWrite else {
                completion(.failure(BoxTransportError(.permissionDenied, "this channel was opened read-only")))
                return .completed
            }
            guard bytes.count == payloadSize else {
                completion(.failure(BoxTransportError(.invalidPayloadSize, "a box holds exactly \(payloadSize) bytes, not \(bytes.count)")))
                return .completed
            }
            let key = BoxKey(namespace: namespace, index: index)
            guard let latency = store.latency() else {
                completion(store.write(key, bytes))
                return .completed
            }
            return .task({ [store] in
                try await Task.sleep(for: latency)
                try store.write(key, bytes).get()
            }, completion: completion)
        }

        /// Completes inline if the box is written or the read polls; a waiting read of an empty
        /// box is parked until a write lands it, the store's `waitTimeout` passes, or it is
        /// cancelled (unless the store adds latency: then a task sleeps first).
        func startRead(
            index: UInt64, mode: BoxReadMode, completion: @escaping @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void
        ) -> BoxOperation {
            let key = BoxKey(namespace: namespace, index: index)
            guard let latency = store.latency() else { return store.startRead(key, mode: mode, completion: completion) }
            return .task({ [store] in
                try await Task.sleep(for: latency)
                return try await BoxOperation.value { store.startRead(key, mode: mode, completion: $0) }
            }, completion: completion)
        }
    }

    /// A latency to add to an operation, if the store adds any.
    private func latency() -> Duration? {
        guard configuration.meanLatency != .zero else { return nil }
        let latency = state.withLock { $0.configuration.meanLatency.exponentialSample(&$0.random) }
        return latency > .zero ? latency : nil
    }

    /// Stores a box and answers the reads waiting on it, in the writer's own call.
    private func write(_ key: BoxKey, _ bytes: [UInt8]) -> Result<Void, BoxTransportError> {
        let answered: [ParkedRead]
        do {
            answered = try state.withLock { (state: inout State) throws(BoxTransportError) in try state.write(key, bytes) }
        } catch {
            return .failure(error)
        }
        for parked in answered { parked.completion(.success(bytes)) }
        return .success(())
    }

    /// Answers a read at once, or parks it under the same lock (so no write can slip between
    /// the look and the parking).
    private func startRead(_ key: BoxKey, mode: BoxReadMode, completion: @escaping ReadCompletion) -> BoxOperation {
        let start = state.withLock { $0.startRead(key, mode: mode, completion) }
        switch start {
        case .answered(let result):
            completion(result)
            return .completed
        case .parked(let id, let startSweeper):
            if startSweeper { self.startSweeper() }
            return BoxOperation { [self] in
                // Only the one that unparks it (this, a write, or the sweeper) answers it.
                state.withLock { $0.unpark(key: key, id: id) }?(.failure(BoxTransportError(.cancelled, "the read was cancelled")))
            }
        }
    }

    /// Starts the sweeper: it sleeps until the oldest waiting read's deadline, answers every
    /// read past its deadline with "not yet written", and ends once no read waits (so an idle
    /// store holds no task). At most one runs per store.
    ///
    /// The sweeper holds the store strongly (a waiting read keeps the store until it is
    /// answered, at most `waitTimeout`): a weak reference would move the store's reference
    /// count to a side table, and every channel operation retains the store.
    private func startSweeper() {
        Task { [self] in
            while let deadline = sweep() {
                try? await Task.sleep(until: deadline, tolerance: .milliseconds(1), clock: .continuous)
            }
        }
    }

    /// Times out the reads past their deadline; returns the next deadline, or `nil` when no
    /// read waits any more (the sweeper then ends).
    private func sweep() -> ContinuousClock.Instant? {
        let (expired, next) = state.withLock { $0.expire(now: .now) }
        for completion in expired { completion(.success(nil)) }
        return next
    }

    struct BoxKey: Hashable {
        /// The store's number for a channel locator (cheaper to hash than the locator).
        var namespace: Int
        var index: UInt64
    }

    private typealias ReadCompletion = @Sendable (Result<[UInt8]?, BoxTransportError>) -> Void

    /// A waiting read parked on an empty box.
    private struct ParkedRead {
        var id: UInt64
        /// The box it waits for, in its channel.
        var index: UInt64
        var completion: ReadCompletion
    }

    /// The boxes of one channel: a channel is written from box 0 on, nearly in order, so boxes
    /// up to a little beyond the highest so far sit in an array (no hashing per operation); any
    /// others, far beyond, in a map.
    private struct ChannelBoxes {
        /// How far beyond the array's end a box still extends it.
        static let maxGap = 1024
        var dense: [[UInt8]?] = []
        var sparse: [UInt64: [UInt8]] = [:]
        /// Boxes below this index are forgotten (``Configuration/forgetsBoxesBehind``).
        var forgottenBelow: UInt64 = 0

        /// Forgets the boxes more than `distance` below `index`; returns how many it held.
        mutating func forget(behind index: UInt64, distance: Int) -> Int {
            guard index > UInt64(distance) else { return 0 }
            let end = index - UInt64(distance)
            var forgotten = 0
            while forgottenBelow < end {
                if forgottenBelow < UInt64(dense.count) {
                    if dense[Int(forgottenBelow)] != nil { forgotten += 1 }
                    dense[Int(forgottenBelow)] = nil
                } else if sparse.removeValue(forKey: forgottenBelow) != nil {
                    forgotten += 1
                }
                forgottenBelow += 1
            }
            return forgotten
        }

        subscript(index: UInt64) -> [UInt8]? {
            if index < UInt64(dense.count) { return dense[Int(index)] }
            return sparse.isEmpty ? nil : sparse[index]
        }

        /// Stores a box that is not there yet.
        mutating func insert(_ bytes: [UInt8], at index: UInt64) {
            if index < UInt64(dense.count) {
                dense[Int(index)] = bytes
            } else if index <= UInt64(dense.count + Self.maxGap) {
                dense.append(contentsOf: repeatElement(nil, count: Int(index) - dense.count))
                dense.append(bytes)
                // Boxes in the map that the array now covers move into it (it alone is looked at).
                if !sparse.isEmpty {
                    for covered in sparse.keys.filter({ $0 < UInt64(dense.count) }) { dense[Int(covered)] = sparse.removeValue(forKey: covered) }
                }
            } else {
                sparse[index] = bytes
            }
        }
    }

    /// The store's mutable state; every method runs under the store's lock.
    private struct State {
        /// How a read starts.
        enum ReadStart {
            /// It is answered at once (outside the lock).
            case answered(Result<[UInt8]?, BoxTransportError>)
            /// It waits, as parked read `id`; `startSweeper` if the sweeper must start.
            case parked(id: UInt64, startSweeper: Bool)
        }

        let configuration: Configuration
        /// The boxes of each channel, by its namespace number.
        var boxes: [ChannelBoxes] = []
        var boxCount = 0
        /// The number of every channel locator seen, in order of first use.
        var namespaces: [[UInt8]: Int] = [:]
        /// The parked reads of each channel, by its namespace number, in the order they
        /// parked: a few read-aheads per channel, so a list scanned per write is cheaper than a
        /// map (hashing each key cost more than the scan).
        var waiters: [[ParkedRead]] = []
        /// The number of parked reads in all channels.
        var waiterCount = 0
        var nextWaiter: UInt64 = 0
        /// Waiting reads in the order they started, which is also the order of their
        /// deadlines (every read waits the same `waitTimeout`); answered ones are skipped.
        var deadlines: [(deadline: ContinuousClock.Instant, key: BoxKey, id: UInt64)] = []
        /// The first entry of `deadlines` still to look at.
        var deadlinesHead = 0
        /// Whether the sweeper task runs.
        var sweeping = false
        var random: SplitMix64
        var statistics = Statistics()

        init(configuration: Configuration) {
            self.configuration = configuration
            random = SplitMix64(seed: configuration.seed)
        }

        /// The number of the channel with read locator `locator`.
        mutating func namespace(_ locator: [UInt8]) -> Int {
            if let number = namespaces[locator] { return number }
            let number = namespaces.count
            namespaces[locator] = number
            boxes.append(ChannelBoxes())
            waiters.append([])
            return number
        }

        /// The box at `key`, if written.
        func box(_ key: BoxKey) -> [UInt8]? { boxes[key.namespace][key.index] }

        /// Fails an operation on a box the channel has forgotten.
        func checkRemembered(_ key: BoxKey) throws(BoxTransportError) {
            guard key.index < boxes[key.namespace].forgottenBelow else { return }
            throw BoxTransportError(.failed, "box \(key.index) was forgotten (the store keeps \(configuration.forgetsBoxesBehind ?? 0) boxes behind the newest)")
        }

        /// Stores a box; returns the reads waiting on it, to be answered outside the lock.
        mutating func write(_ key: BoxKey, _ bytes: [UInt8]) throws(BoxTransportError) -> [ParkedRead] {
            statistics.writes += 1
            try checkRemembered(key)
            if let existing = box(key) {
                guard existing == bytes else {
                    statistics.conflictingWrites += 1
                    throw BoxTransportError(.alreadyExists, "box \(key.index) already holds different data")
                }
                return []
            }
            if random.unit() < configuration.writeLoss {
                statistics.lostWrites += 1
                return []
            }
            guard boxCount < configuration.maxBoxes else { throw BoxTransportError(.unavailable, "the store is full") }
            boxes[key.namespace].insert(bytes, at: key.index)
            boxCount += 1
            if let distance = configuration.forgetsBoxesBehind {
                boxCount -= boxes[key.namespace].forget(behind: key.index, distance: distance)
            }
            statistics.boxes = boxCount
            guard waiterCount > 0, waiters[key.namespace].contains(where: { $0.index == key.index }) else { return [] }
            let answered = waiters[key.namespace].filter { $0.index == key.index }
            waiters[key.namespace].removeAll { $0.index == key.index }
            waiterCount -= answered.count
            return answered
        }

        /// Counts a read and answers it, or parks it if it must wait.
        mutating func startRead(_ key: BoxKey, mode: BoxReadMode, _ completion: @escaping ReadCompletion) -> ReadStart {
            statistics.reads += 1
            if random.unit() < configuration.readLoss { return .answered(.failure(BoxTransportError(.timeout, "the read was lost"))) }
            do throws(BoxTransportError) { try checkRemembered(key) } catch { return .answered(.failure(error)) }
            if let bytes = box(key) { return .answered(.success(bytes)) }
            guard mode == .wait else { return .answered(.success(nil)) }
            nextWaiter += 1
            return .parked(id: nextWaiter, startSweeper: park(ParkedRead(id: nextWaiter, index: key.index, completion: completion), key: key))
        }

        /// Parks a waiting read with its deadline; returns whether the sweeper must start.
        private mutating func park(_ read: ParkedRead, key: BoxKey) -> Bool {
            waiters[key.namespace].append(read)
            waiterCount += 1
            dropAnsweredDeadlines()
            deadlines.append((ContinuousClock.now + configuration.waitTimeout, key, read.id))
            guard !sweeping else { return false }
            sweeping = true
            return true
        }

        /// Removes a parked read; returns its completion unless it was answered already.
        mutating func unpark(key: BoxKey, id: UInt64) -> ReadCompletion? {
            guard let position = waiters[key.namespace].firstIndex(where: { $0.id == id }) else { return nil }
            waiterCount -= 1
            return waiters[key.namespace].remove(at: position).completion
        }

        /// Removes the reads past their deadline; returns them and the next deadline, or
        /// `nil` (and stops sweeping) when no read waits.
        mutating func expire(now: ContinuousClock.Instant) -> (expired: [ReadCompletion], next: ContinuousClock.Instant?) {
            var expired: [ReadCompletion] = []
            dropAnsweredDeadlines()
            while deadlinesHead < deadlines.count, deadlines[deadlinesHead].deadline <= now {
                let first = deadlines[deadlinesHead]
                deadlinesHead += 1
                if let waiter = unpark(key: first.key, id: first.id) { expired.append(waiter) }
                dropAnsweredDeadlines()
            }
            guard deadlinesHead < deadlines.count else {
                sweeping = false
                return (expired, nil)
            }
            return (expired, deadlines[deadlinesHead].deadline)
        }

        /// Whether read `id` is still parked on `key`.
        private func isParked(_ key: BoxKey, id: UInt64) -> Bool {
            waiters[key.namespace].contains { $0.id == id }
        }

        /// Skips the oldest entries of reads already answered, and compacts the queue once
        /// half of it is skipped, so answered entries do not pile up before the oldest waiting one.
        private mutating func dropAnsweredDeadlines() {
            while deadlinesHead < deadlines.count,
                  !isParked(deadlines[deadlinesHead].key, id: deadlines[deadlinesHead].id) {
                deadlinesHead += 1
            }
            if deadlinesHead == deadlines.count {
                deadlines.removeAll(keepingCapacity: true)
                deadlinesHead = 0
            } else if deadlinesHead > 64, deadlinesHead * 2 > deadlines.count {
                deadlines.removeFirst(deadlinesHead)
                deadlinesHead = 0
            }
        }
    }
}

extension Duration {
    /// A sample of the exponential distribution with this mean.
    public func exponentialSample(_ random: inout SplitMix64) -> Duration {
        let u = max(random.unit(), 1e-12)
        let nanos = Double(nanosecondsClamped) * -log(u)
        return .nanoseconds(Int64(min(nanos, Double(Int64.max / 2))))
    }
}
