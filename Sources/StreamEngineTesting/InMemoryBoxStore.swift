#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StreamCrypto
import StreamEngine

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
        /// Boxes stored.
        public var boxes = 0
    }

    let configuration: Configuration
    private let state: State

    /// Creates an empty store.
    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        state = State(configuration: configuration)
    }

    public func payloadSize() async throws -> Int { configuration.payloadSize }

    public func channel(_ credential: BoxChannelCredential) async throws -> any BoxChannel {
        switch credential {
        case .writerSeed(let seed):
            guard seed.count == 32 else { throw BoxTransportError(.permissionDenied, "a writer seed is 32 bytes") }
            return Channel(store: self, namespace: await state.namespace(Self.locator(seed)), canWrite: true)
        case .readLocator(let locator):
            guard locator.count == 32 else { throw BoxTransportError(.permissionDenied, "unknown read locator format") }
            return Channel(store: self, namespace: await state.namespace(locator), canWrite: false)
        }
    }

    public func readLocator(forWriterSeed seed: [UInt8]) async throws -> [UInt8] { Self.locator(seed) }

    /// The store's counters.
    public func statistics() async -> Statistics { await state.statistics }

    static func locator(_ seed: [UInt8]) -> [UInt8] { SHA256.hash(Array("streamd in-memory box store".utf8) + seed) }

    private struct Channel: BoxChannel {
        let store: InMemoryBoxStore
        /// The store's number for the channel's locator.
        let namespace: Int
        let canWrite: Bool

        var payloadSize: Int { store.configuration.payloadSize }

        func write(index: UInt64, bytes: [UInt8]) async throws {
            guard canWrite else { throw BoxTransportError(.permissionDenied, "this channel was opened read-only") }
            guard bytes.count == payloadSize else {
                throw BoxTransportError(.invalidPayloadSize, "a box holds exactly \(payloadSize) bytes, not \(bytes.count)")
            }
            try await store.delay()
            try await store.state.write(BoxKey(namespace: namespace, index: index), bytes)
        }

        func read(index: UInt64, mode: BoxReadMode) async throws -> [UInt8]? {
            try await store.delay()
            return try await store.state.read(BoxKey(namespace: namespace, index: index), mode: mode)
        }
    }

    private func delay() async throws {
        // No hop to the state actor when there is no latency to sample.
        guard configuration.meanLatency != .zero else { return }
        let latency = await state.sampleLatency()
        if latency > .zero { try await Task.sleep(for: latency) }
    }

    struct BoxKey: Hashable {
        /// The store's number for a channel locator (cheaper to hash than the locator).
        var namespace: Int
        var index: UInt64
    }

    private actor State {
        let configuration: Configuration
        var boxes: [BoxKey: [UInt8]] = [:]
        /// The number of every channel locator seen, in order of first use.
        var namespaces: [[UInt8]: Int] = [:]
        var waiters: [BoxKey: [UInt64: CheckedContinuation<[UInt8]?, any Error>]] = [:]
        var nextWaiter: UInt64 = 0
        /// Waiting reads in the order they started, which is also the order of their
        /// deadlines (every read waits the same `waitTimeout`); answered ones are skipped.
        var deadlines: [(deadline: ContinuousClock.Instant, key: BoxKey, id: UInt64)] = []
        /// The first entry of `deadlines` still to look at.
        var deadlinesHead = 0
        /// The one task that answers timed-out reads, while any read waits.
        var sweeper: Task<Void, Never>?
        var random: SplitMix64
        var statistics = Statistics()

        init(configuration: Configuration) {
            self.configuration = configuration
            random = SplitMix64(seed: configuration.seed)
        }

        func sampleLatency() -> Duration {
            configuration.meanLatency == .zero ? .zero : configuration.meanLatency.exponentialSample(&random)
        }

        /// The number of the channel with read locator `locator`.
        func namespace(_ locator: [UInt8]) -> Int {
            if let number = namespaces[locator] { return number }
            let number = namespaces.count
            namespaces[locator] = number
            return number
        }

        func write(_ key: BoxKey, _ bytes: [UInt8]) throws {
            statistics.writes += 1
            if let existing = boxes[key] {
                guard existing == bytes else {
                    statistics.conflictingWrites += 1
                    throw BoxTransportError(.alreadyExists, "box \(key.index) already holds different data")
                }
                return
            }
            if random.unit() < configuration.writeLoss {
                statistics.lostWrites += 1
                return
            }
            guard boxes.count < configuration.maxBoxes else { throw BoxTransportError(.unavailable, "the store is full") }
            boxes[key] = bytes
            statistics.boxes = boxes.count
            for waiter in waiters.removeValue(forKey: key)?.values ?? [:].values { waiter.resume(returning: bytes) }
        }

        func read(_ key: BoxKey, mode: BoxReadMode) async throws -> [UInt8]? {
            statistics.reads += 1
            if random.unit() < configuration.readLoss { throw BoxTransportError(.timeout, "the read was lost") }
            if let bytes = boxes[key] { return bytes }
            guard mode == .wait else { return nil }
            let id = nextWaiter
            nextWaiter += 1
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        waiters[key, default: [:]][id] = continuation
                        dropAnsweredDeadlines()
                        deadlines.append((ContinuousClock.now + configuration.waitTimeout, key, id))
                        startSweeper()
                    }
                }
            } onCancel: {
                Task { await self.resumeWaiter(key, id, with: .failure(CancellationError())) }
            }
        }

        /// Starts the sweeper unless it runs: it sleeps until the oldest waiting read's
        /// deadline, answers every read past its deadline with "not yet written", and ends
        /// once no read waits (so an idle store holds no task).
        private func startSweeper() {
            guard sweeper == nil else { return }
            sweeper = Task { [weak self] in
                while let deadline = await self?.sweep() {
                    try? await Task.sleep(until: deadline, tolerance: .milliseconds(1), clock: .continuous)
                }
            }
        }

        /// Times out the reads past their deadline; returns the next deadline, or `nil` (and
        /// forgets the sweeper) when no read waits any more.
        private func sweep() -> ContinuousClock.Instant? {
            let now = ContinuousClock.now
            dropAnsweredDeadlines()
            while deadlinesHead < deadlines.count, deadlines[deadlinesHead].deadline <= now {
                let first = deadlines[deadlinesHead]
                deadlinesHead += 1
                resumeWaiter(first.key, first.id, with: .success(nil))
                dropAnsweredDeadlines()
            }
            guard deadlinesHead < deadlines.count else {
                sweeper = nil
                return nil
            }
            return deadlines[deadlinesHead].deadline
        }

        /// Skips the oldest entries of reads already answered, and compacts the queue once
        /// half of it is skipped, so answered entries do not pile up before the oldest waiting one.
        private func dropAnsweredDeadlines() {
            while deadlinesHead < deadlines.count,
                  waiters[deadlines[deadlinesHead].key]?[deadlines[deadlinesHead].id] == nil {
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

        func resumeWaiter(_ key: BoxKey, _ id: UInt64, with result: Result<[UInt8]?, any Error>) {
            guard let continuation = waiters[key]?.removeValue(forKey: id) else { return }
            if waiters[key]?.isEmpty == true { waiters[key] = nil }
            continuation.resume(with: result)
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
