import StreamCrypto
import StreamEngine

/// A deterministic simulation of two stream ends over a lossy box store, on a virtual clock.
///
/// Everything is driven from one seeded generator: latency (exponential), write loss (the box
/// is acknowledged but never stored), read failures, duplicated and reordered completions,
/// disk latency for journal persistence, and crashes that drop a machine with its unpersisted
/// journal and restore it from the durable checkpoint and journal (through their CBOR forms).
///
/// Each receiving app keeps its own offset and processes what it gets: it peeks from that
/// offset and consumes with a random lag, counting a consume as done only once durable; after a
/// crash it keeps every byte it had and reads on from its offset. A share of the seeds
/// (``Parameters/exactlyOnceReads`` off) uses the at-least-once ``StreamMachine/appRead(maxLength:now:)``
/// instead, whose app drops the bytes offered again after a crash, checking they are identical.
///
/// The run checks the protocol's invariants and reports any violation:
/// - each side's app receives exactly the bytes the other wrote, in order, without duplicates
///   or gaps, and (with exactly-once reads) without ever being offered a byte twice;
/// - bytes acknowledged to an app survive every crash, and so do consumes confirmed durable;
///   a restored stream never consumed more than its app processed;
/// - no box index is ever written with two different contents;
/// - both directions close within the time limit.
public struct StreamSimulation {
    /// What to simulate.
    public struct Parameters: Sendable {
        public var seed: UInt64
        public var mode: StreamMode = .endToEnd
        public var boxSize = 1024
        /// Probability that an operation is lost (a write: acknowledged but not stored, or failed;
        /// a read: failed).
        public var loss = 0.0
        /// Probability that a completion is delivered twice.
        public var duplication = 0.0
        /// Probability that an operation never completes (an ARQ stuck on a departed courier):
        /// only the machine's operation deadline gets the stream past it.
        public var hang = 0.0
        public var meanLatency: Duration = .milliseconds(500)
        public var meanPersistLatency: Duration = .milliseconds(5)
        /// How long a waiting read waits before the store answers "not yet written".
        public var waitTimeout: Duration = .seconds(20)
        /// Crashes of either end at random moments.
        public var crashes = 0
        /// Bytes the listener sends, and bytes the dialer sends.
        public var listenerBytes = 10_000
        public var dialerBytes = 10_000
        /// The largest single app write.
        public var maxWriteChunk = 4096
        /// If set, each app produces its data at this pace, ``paceChunk`` bytes at a time, instead
        /// of all at once; ``Report/deliveryLatencies`` then holds each chunk's app-to-app latency.
        public var paceInterval: Duration?
        /// The bytes each app produces per ``paceInterval``.
        public var paceChunk = 100
        public var configuration = StreamConfiguration()
        /// Whether the receiving apps read with ``StreamMachine/peek(from:maxLength:)`` and
        /// ``StreamMachine/consume(through:now:)`` (exactly once), or with
        /// ``StreamMachine/appRead(maxLength:now:)`` (at least once across crashes).
        public var exactlyOnceReads = true
        /// The run fails if the streams have not both closed by then.
        public var timeLimit: Duration = .seconds(4 * 3600)
        /// If set, the simulation goes on this long after both streams closed, counting the
        /// operations they still make (``Report/operationsAfterClose``): a closed stream must
        /// fall silent.
        public var observeAfterClose: Duration?

        /// Creates parameters for a seed.
        public init(seed: UInt64) { self.seed = seed }

        /// Random parameters covering the ranges the protocol must survive.
        public static func random(seed: UInt64) -> Parameters {
            var random = SplitMix64(seed: seed ^ 0x5EED)
            var p = Parameters(seed: seed)
            p.boxSize = [256, 400, 1024, 1549][Int(random.next() % 4)]
            p.loss = random.unit() * 0.5
            p.duplication = 0.01 + random.unit() * 0.09
            p.meanLatency = .milliseconds(Int64(20 + random.next() % 2000))
            p.crashes = Int(1 + random.next() % 3)
            p.listenerBytes = Int(random.next() % 20_000)
            p.dialerBytes = Int(random.next() % 20_000)
            p.configuration.sendWindow = Int(1 + random.next() % 16)
            p.configuration.readAhead = Int(2 + random.next() % 15)
            p.configuration.maxWriteBuffer = Int(512 + random.next() % 16_384)
            p.configuration.maxReadBuffer = Int(512 + random.next() % 16_384)
            if random.next() % 5 == 0 { p.mode = .multicast }
            p.exactlyOnceReads = random.unit() >= 0.3  // 30 % of seeds keep the at-least-once `appRead`.
            // Drawn last, so that the draws above (and the seeds named in tests) keep their meaning.
            // Journal writes from 1 ms to about half a mean latency, so that crashes often
            // find records not yet durable.
            p.meanPersistLatency = .nanoseconds(1_000_000 + Int64(random.unit() * 0.5 * Double(p.meanLatency.nanosecondsClamped)))
            if random.next() % 4 == 0 { p.hang = random.unit() * 0.05 }
            return p
        }
    }

    /// What happened.
    public struct Report: Sendable, CustomStringConvertible {
        public var violations: [String] = []
        public var finished = false
        public var simulatedTime: Duration = .zero
        public var events = 0
        public var boxWrites = 0
        /// Distinct boxes written (so `boxWrites - distinctBoxes` writes were retransmissions).
        public var distinctBoxes = 0
        public var boxReads = 0
        /// Per side (listener, dialer): box writes, including retransmissions.
        public var writesBySide = [0, 0]
        /// Per side: box writes of ack-only frames (retransmissions included).
        public var ackOnlyWritesBySide = [0, 0]
        /// Per side: distinct data or FIN frames written.
        public var dataBoxesBySide = [0, 0]
        /// Per side: box reads of the peer's channel.
        public var readsBySide = [0, 0]
        /// Per side: reads of the peer's channel that reached a box not written yet.
        public var emptyReadsBySide = [0, 0]
        /// Per side: why box writes were made (summed over crashes).
        public var sendStatisticsBySide = [StreamSendStatistics(), StreamSendStatistics()]
        /// Box reads and writes both ends made after both had closed (``Parameters/observeAfterClose``).
        public var operationsAfterClose = 0
        /// Per side: the most operations the machine had in flight at once.
        public var maxOperationsInFlight = [0, 0]
        /// Operations that never completed (``Parameters/hang``).
        public var hungOperations = 0
        /// For paced apps (``Parameters/paceInterval``): each chunk's time from being handed to
        /// the sending app until the receiving app had all of it.
        public var deliveryLatencies: [Duration] = []
        /// A digest of every event's time and kind: equal for two runs of one seed.
        public var traceDigest: UInt64 = 0xCBF2_9CE4_8422_2325
        public var crashes = 0
        /// Bytes offered to an app a second time after a crash, which it dropped after checking
        /// them (at-least-once ``StreamMachine/appRead(maxLength:now:)`` only).
        public var reofferedBytes = 0
        /// Restores after which the stream's consumed offset was behind its app's own offset: the
        /// app had processed bytes whose consume was not durable (exactly-once reads only).
        public var restoresBehindApp = 0
        /// When each end's app had received everything the other end sent (listener, dialer).
        public var deliveredAt: [Duration?] = [nil, nil]
        /// Per side (listener, dialer): operations in flight, summed over simulated seconds until
        /// the transfer finished, by what they wait on: divided by the time, how each end's
        /// operation budget was used.
        public var operationSeconds = [OperationSeconds(), OperationSeconds()]
        /// Whether every invariant held and both ends closed in time.
        public var passed: Bool { violations.isEmpty && finished }

        public var description: String {
            "finished=\(finished) time=\(simulatedTime) events=\(events) writes=\(boxWrites) reads=\(boxReads) hung=\(hungOperations) crashes=\(crashes) reoffered=\(reofferedBytes) behind=\(restoresBehindApp) violations=\(violations)"
        }
    }

    /// The bound on box writes per data box, scaled by `1/(1 − loss)²`, above 300 writes of
    /// slack: the worst of 3,000 random seeds makes about half of it; the retransmission storm
    /// of an earlier version made several times more.
    public static let maxWritesPerDataBox = 40.0

    /// Runs one simulation to completion or to its time limit.
    /// Operations in flight summed over simulated seconds, by what they wait on.
    public struct OperationSeconds: Sendable {
        /// What an operation in flight waits on.
        public enum Kind: Int, CaseIterable, Sendable {
            case write
            /// A read of a peer box that is stored.
            case readOfStoredBox
            /// A read of a peer box whose write is landing (half a write's latency in).
            case readOfLandingBox
            /// A read of a peer box written but not stored: every write so far was lost.
            case readOfLostBox
            /// A read of a peer box not written yet.
            case readOfUnwrittenBox
            /// A read of this end's own box (multicast verification).
            case readOfOwnBox
        }

        /// The simulated seconds counted.
        public var seconds = 0.0
        private var byKind = [Double](repeating: 0, count: Kind.allCases.count)

        public init() {}

        /// Operation-seconds of `kind`.
        public subscript(kind: Kind) -> Double { byKind[kind.rawValue] }

        /// The mean number of operations of `kind` in flight.
        public func mean(_ kind: Kind) -> Double { seconds > 0 ? byKind[kind.rawValue] / seconds : 0 }

        mutating func add(_ operationSeconds: Double, to kind: Kind) { byKind[kind.rawValue] += operationSeconds }

        /// Adds another run's figures.
        public mutating func add(_ other: OperationSeconds) {
            seconds += other.seconds
            for kind in Kind.allCases { byKind[kind.rawValue] += other.byKind[kind.rawValue] }
        }
    }

    public static func run(_ parameters: Parameters) -> Report {
        var world = World(parameters)
        world.run()
        return world.report
    }
}

// MARK: - The simulated world

private struct World {
    enum Side: Int { case listener = 0, dialer = 1 }

    enum Event {
        case writeDone(Side, incarnation: Int, OperationID, Result<Void, BoxTransportError>)
        case readDone(Side, incarnation: Int, OperationID, Result<[UInt8]?, BoxTransportError>)
        case writeLands(channel: Int, index: UInt64, bytes: [UInt8])
        case waitTimeout(waiterID: Int)
        case timer(Side, incarnation: Int)
        case persisted(Side, incarnation: Int, through: UInt64)
        case consume(Side, incarnation: Int)
        case crash(Side)
        case produce(Side)

        /// A number for the event's kind and side, for ``StreamSimulation/Report/traceDigest``.
        var traceKind: UInt64 {
            switch self {
            case .writeDone(let side, _, let operation, _): 1 | UInt64(side.rawValue) << 4 | operation.rawValue << 8
            case .readDone(let side, _, let operation, _): 2 | UInt64(side.rawValue) << 4 | operation.rawValue << 8
            case .writeLands(let channel, let index, _): 3 | UInt64(channel) << 4 | index << 8
            case .waitTimeout(let id): 4 | UInt64(id) << 8
            case .timer(let side, _): 5 | UInt64(side.rawValue) << 4
            case .persisted(let side, _, let through): 6 | UInt64(side.rawValue) << 4 | through << 8
            case .consume(let side, _): 7 | UInt64(side.rawValue) << 4
            case .crash(let side): 8 | UInt64(side.rawValue) << 4
            case .produce(let side): 9 | UInt64(side.rawValue) << 4
            }
        }
    }

    /// What an operation in flight works on: a write, or a read of a box of `channel`.
    enum OperationTarget {
        case write
        case read(channel: Int, index: UInt64, own: Bool)
    }

    struct Waiter {
        var id: Int
        var side: Side
        var incarnation: Int
        var operation: OperationID
        var channel: Int
        var index: UInt64
    }

    /// One end and its app. A class, so that the machine is mutated in place: copying it out of
    /// an array would make every change copy its buffers.
    final class Endpoint {
        var machine: StreamMachine
        var incarnation = 0
        /// The durable storage: an encoded snapshot and encoded journal records after it.
        var snapshot: [UInt8]
        var persistedRecords: [[UInt8]] = []
        var unpersisted: [CheckpointRecord] = []
        var persistInFlight = false
        /// The app's data to send, how much it handed over, and which writes were acknowledged.
        var data: [UInt8]
        var handedOver = 0
        /// How much of `data` the app has produced so far, and when each paced chunk was produced.
        var produced = 0
        var producedAt: [(end: Int, time: StreamTime)] = []
        var writeAcks: [(end: Int, sequence: UInt64)] = []
        var acknowledged = 0
        /// The bytes the app processed, in order; their count is its read offset.
        var received: [UInt8] = []
        /// Whether a lagging consume is due as an event; consumes awaiting durability; and the
        /// offset through which consumes are durable (exactly-once reads).
        var consumeScheduled = false
        var consumeAcks: [(end: Int, sequence: UInt64)] = []
        var consumedDurably = 0
        var timerAt: StreamTime?
        /// Operations issued and neither completed nor cancelled.
        var inFlight: [OperationID: OperationTarget] = [:]

        init(machine: StreamMachine, snapshot: [UInt8], data: [UInt8]) {
            self.machine = machine
            self.snapshot = snapshot
            self.data = data
        }
    }

    let parameters: StreamSimulation.Parameters
    var random: SplitMix64
    var now = StreamTime.zero
    var queue = EventQueue()
    var endpoints: [Endpoint] = []
    /// Box contents per channel (0: listener→dialer, 1: dialer→listener).
    var boxes: [[UInt64: [UInt8]]] = [[:], [:]]
    /// The first content ever written to each index, lost writes included.
    var firstWritten: [[UInt64: [UInt8]]] = [[:], [:]]
    var waiters: [Int: Waiter] = [:]
    /// Boxes whose write is landing, as `index << 1 | channel`.
    var landing: Set<UInt64> = []
    var nextWaiterID = 0
    var report = StreamSimulation.Report()
    /// When both streams had closed, and the operations made by then.
    var closedAt: (time: StreamTime, operations: Int)?

    init(_ parameters: StreamSimulation.Parameters) {
        self.parameters = parameters
        random = SplitMix64(seed: parameters.seed)
        let secret = (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) }
        for side in [Side.listener, .dialer] {
            let multicast = parameters.mode == .multicast
            let bytes = side == .listener ? parameters.listenerBytes : (multicast ? 0 : parameters.dialerBytes)
            let data = (0..<bytes).map { _ in UInt8.random(in: 0...255, using: &random) }
            let address: StreamAddress
            if !multicast {
                address = StreamAddress(.endToEnd(secret: secret))
            } else if side == .listener {
                address = StreamAddress(.multicastWriter(secret: secret))
            } else {
                let direction = StreamKeySchedule.direction(secret: secret, from: .listener)
                address = StreamAddress(.multicastReader(
                    frameKeyBase: direction.frameKeyBase, verifyKey: Ed25519.keyPair(seed: direction.signingSeed).publicKey, readLocator: [0]))
            }
            do {
                let machine = try StreamMachine(
                    address: address, role: side == .listener ? .listener : .dialer, boxSize: parameters.boxSize,
                    configuration: parameters.configuration, durability: .explicit, now: .zero, randomSeed: random.next())
                endpoints.append(Endpoint(machine: machine, snapshot: machine.checkpoint.encoded(), data: data))
            } catch {
                report.violations.append("cannot create stream: \(error)")
            }
        }
        // Crashes land while the transfer is under way: within about 10 mean latencies.
        let horizon = Double(parameters.meanLatency.nanosecondsClamped) * 10
        for endpoint in endpoints {
            endpoint.produced = parameters.paceInterval == nil ? endpoint.data.count : 0
        }
        if parameters.paceInterval != nil {
            for side in [Side.listener, .dialer] { queue.push(.zero, .produce(side)) }
        }
        for _ in 0..<parameters.crashes {
            let at = StreamTime(nanoseconds: Int64(random.unit() * horizon))
            queue.push(at, .crash(random.next() % 2 == 0 ? .listener : .dialer))
        }
    }

    mutating func run() {
        guard endpoints.count == 2 else { return }
        for side in [Side.listener, .dialer] { drive(side) }
        let limit = StreamTime.zero + parameters.timeLimit
        while let (time, event) = queue.pop() {
            if time > limit { break }
            if !report.finished { countOperations(for: time - now) }
            now = time
            report.events += 1
            report.traceDigest = (report.traceDigest ^ UInt64(bitPattern: time.nanoseconds) ^ event.traceKind) &* 0x100_0000_01B3
            handle(event)
            if !report.violations.isEmpty { break }
            if !report.finished, isFinished {
                report.finished = true
                guard let observe = parameters.observeAfterClose else { break }
                closedAt = (now, report.boxReads + report.boxWrites)
                queue.push(now + observe, .timer(.listener, incarnation: -1))  // Keeps the clock going to the end.
            }
            if let closedAt, let observe = parameters.observeAfterClose, now >= closedAt.time + observe {
                report.operationsAfterClose = report.boxReads + report.boxWrites - closedAt.operations
                break
            }
            if report.events > 5_000_000 { report.violations.append("event budget exhausted"); break }
        }
        report.simulatedTime = now - .zero
        if let closedAt { report.operationsAfterClose = report.boxReads + report.boxWrites - closedAt.operations }
        for side in [Side.listener, .dialer] { report.sendStatisticsBySide[side.rawValue].add(endpoints[side.rawValue].machine.sendStatistics) }
        report.distinctBoxes = firstWritten[0].count + firstWritten[1].count
        // A bound on writes per delivered data box: a retransmission storm fails the seed.
        let dataBoxes = Double(report.dataBoxesBySide.reduce(0, +) + 2)
        let delivery = (1 - parameters.loss) * (1 - parameters.loss)
        let writeBound = 300 + Int(StreamSimulation.maxWritesPerDataBox * dataBoxes / delivery)
        if report.boxWrites > writeBound, parameters.observeAfterClose == nil {
            report.violations.append("retransmission storm: \(report.boxWrites) box writes for \(Int(dataBoxes) - 2) data boxes (bound \(writeBound))")
        }
        if !report.finished, report.violations.isEmpty {
            let summary = endpoints.map { "\($0.machine.status) \($0.machine.diagnostics)" }.joined(separator: " | ")
            report.violations.append("streams did not close within \(parameters.timeLimit): \(summary)")
        }
        checkDelivery(final: true)
    }

    /// Adds the operations in flight over `duration` to ``StreamSimulation/Report/operationSeconds``.
    mutating func countOperations(for duration: Duration) {
        let seconds = Double(duration.nanosecondsClamped) / 1e9
        guard seconds > 0 else { return }
        for side in 0..<2 {
            report.operationSeconds[side].seconds += seconds
            for target in endpoints[side].inFlight.values {
                let kind: StreamSimulation.OperationSeconds.Kind
                switch target {
                case .write: kind = .write
                case .read(_, _, own: true): kind = .readOfOwnBox
                case .read(let channel, let index, own: false):
                    if boxes[channel][index] != nil {
                        kind = .readOfStoredBox
                    } else if landing.contains(index << 1 | UInt64(channel)) {
                        kind = .readOfLandingBox
                    } else if firstWritten[channel][index] != nil {
                        kind = .readOfLostBox
                    } else {
                        kind = .readOfUnwrittenBox
                    }
                }
                report.operationSeconds[side].add(seconds, to: kind)
            }
        }
    }

    var isFinished: Bool {
        let delivered = endpoints[0].received.count == endpoints[1].data.count && endpoints[1].received.count == endpoints[0].data.count
            && (!parameters.exactlyOnceReads || endpoints.allSatisfy { $0.consumedDurably == $0.received.count })
        if parameters.mode == .multicast {
            return delivered && endpoints[0].machine.isClosed && endpoints[1].machine.isReadFinished
        }
        return delivered && endpoints.allSatisfy { $0.machine.isClosed && $0.machine.isReadFinished && $0.handedOver == $0.data.count }
    }

    // MARK: Events

    mutating func handle(_ event: Event) {
        switch event {
        case .writeDone(let side, let incarnation, let operation, let result):
            guard endpoints[side.rawValue].incarnation == incarnation else { return }
            endpoints[side.rawValue].inFlight[operation] = nil
            endpoints[side.rawValue].machine.writeCompleted(operation, result: result, now: now)
            drive(side)
        case .readDone(let side, let incarnation, let operation, let result):
            guard endpoints[side.rawValue].incarnation == incarnation else { return }
            endpoints[side.rawValue].inFlight[operation] = nil
            endpoints[side.rawValue].machine.readCompleted(operation, result: result, now: now)
            drive(side)
        case .writeLands(let channel, let index, let bytes):
            land(channel: channel, index: index, bytes: bytes)
        case .waitTimeout(let id):
            if let waiter = waiters.removeValue(forKey: id) {
                queue.push(now, .readDone(waiter.side, incarnation: waiter.incarnation, waiter.operation, .success(nil)))
            }
        case .timer(let side, let incarnation):
            // Only the most recently scheduled timer counts; superseded ones are ignored.
            guard endpoints[side.rawValue].incarnation == incarnation, let due = endpoints[side.rawValue].timerAt, due <= now else { return }
            endpoints[side.rawValue].timerAt = nil
            endpoints[side.rawValue].machine.handleTimers(now: now)
            drive(side)
        case .persisted(let side, let incarnation, let through):
            guard endpoints[side.rawValue].incarnation == incarnation else { return }
            persisted(side, through: through)
            drive(side)
        case .consume(let side, let incarnation):
            guard endpoints[side.rawValue].incarnation == incarnation else { return }
            endpoints[side.rawValue].consumeScheduled = false
            consume(side)
            drive(side)
        case .crash(let side):
            crash(side)
            drive(side)
        case .produce(let side):
            let endpoint = endpoints[side.rawValue]
            guard endpoint.produced < endpoint.data.count, let interval = parameters.paceInterval else { return }
            endpoint.produced = min(endpoint.data.count, endpoint.produced + parameters.paceChunk)
            endpoint.producedAt.append((end: endpoint.produced, time: now))
            queue.push(now + interval, .produce(side))
            drive(side)
        }
    }

    /// Performs a machine's outputs and lets its app act.
    mutating func drive(_ side: Side) {
        for _ in 0..<1000 {
            appAct(side)
            let actions = endpoints[side.rawValue].machine.takeActions()
            let records = endpoints[side.rawValue].machine.takeJournal()
            endpoints[side.rawValue].unpersisted += records
            for action in actions { perform(action, side) }
            report.maxOperationsInFlight[side.rawValue] = max(report.maxOperationsInFlight[side.rawValue], endpoints[side.rawValue].inFlight.count)
            startPersist(side)
            if let failure = endpoints[side.rawValue].machine.failure {
                report.violations.append("\(side) failed: \(failure)")
                return
            }
            if actions.isEmpty && records.isEmpty { break }
        }
        if let deadline = endpoints[side.rawValue].machine.nextDeadline, endpoints[side.rawValue].timerAt != deadline {
            endpoints[side.rawValue].timerAt = deadline
            queue.push(max(deadline, now), .timer(side, incarnation: endpoints[side.rawValue].incarnation))
        }
    }

    mutating func appAct(_ side: Side) {
        let endpoint = endpoints[side.rawValue]
        if parameters.exactlyOnceReads {
            receiveExactlyOnce(side)
        } else {
            // Read everything available, at least once.
            while case let offset = endpoint.machine.checkpoint.bytesConsumed,
                  case let bytes = endpoint.machine.appRead(maxLength: 1 << 20, now: now), !bytes.isEmpty {
                accept(bytes, at: offset, side)
            }
        }
        if report.deliveredAt[side.rawValue] == nil, endpoint.received.count == endpoints[1 - side.rawValue].data.count {
            report.deliveredAt[side.rawValue] = now - .zero
        }
        // Write in chunks of random size while the stream accepts.
        while endpoint.handedOver < endpoint.produced, endpoint.machine.writeCapacity > 0 {
            let size = min(endpoint.produced - endpoint.handedOver, Int(1 + random.next() % UInt64(parameters.maxWriteChunk)))
            let chunk = Array(endpoint.data[endpoint.handedOver..<(endpoint.handedOver + size)])
            guard let (accepted, sequence) = try? endpoint.machine.appWrite(chunk, now: now), accepted > 0 else { break }
            endpoint.handedOver += accepted
            endpoint.writeAcks.append((end: endpoint.handedOver, sequence: sequence))
        }
        if endpoint.handedOver == endpoint.data.count, endpoint.machine.writeCapacity > 0 {
            try? endpoint.machine.appClose(now: now)
        }
        // Writes whose journal is durable count as acknowledged to the app.
        while let first = endpoint.writeAcks.first, first.sequence <= endpoint.machine.durableSequence {
            endpoint.acknowledged = max(endpoint.acknowledged, first.end)
            endpoint.writeAcks.removeFirst()
        }
    }

    /// Peeks from the app's own offset in chunks of random size, then consumes what it
    /// processed: at once, or (more often) in a later event.
    mutating func receiveExactlyOnce(_ side: Side) {
        let endpoint = endpoints[side.rawValue]
        while true {
            let offset = UInt64(endpoint.received.count)
            let bytes: [UInt8]
            do {
                bytes = try endpoint.machine.peek(from: offset, maxLength: Int(1 + random.next() % 8192))
            } catch {
                report.violations.append("\(side) cannot read on from its offset \(offset): \(error)")
                return
            }
            if bytes.isEmpty { break }
            accept(bytes, at: offset, side)
        }
        // Durable consumes count as done.
        while let first = endpoint.consumeAcks.first, first.sequence <= endpoint.machine.durableSequence {
            endpoint.consumedDurably = max(endpoint.consumedDurably, first.end)
            endpoint.consumeAcks.removeFirst()
        }
        // After a restore the machine may not hold every byte the app has yet: consume what it holds.
        let consumable = min(UInt64(endpoint.received.count), endpoint.machine.checkpoint.deliveredBytes)
        guard consumable > endpoint.machine.checkpoint.bytesConsumed, !endpoint.consumeScheduled else { return }
        if random.unit() < 0.3 {
            consume(side)
        } else {
            endpoint.consumeScheduled = true
            let lag = parameters.meanLatency.exponentialSample(&random).scaled(0.5)
            queue.push(now + lag, .consume(side, incarnation: endpoint.incarnation))
        }
    }

    /// The app confirms it processed everything it holds that the machine holds too.
    mutating func consume(_ side: Side) {
        let endpoint = endpoints[side.rawValue]
        let through = min(UInt64(endpoint.received.count), endpoint.machine.checkpoint.deliveredBytes)
        do {
            let sequence = try endpoint.machine.consume(through: through, now: now)
            endpoint.consumeAcks.append((end: Int(through), sequence: sequence))
        } catch {
            report.violations.append("\(side) cannot consume through \(through): \(error)")
        }
    }

    /// Appends bytes the app was handed for stream offset `offset` to what it processed; bytes
    /// below its offset (offered again) must match what it has and are dropped.
    mutating func accept(_ bytes: [UInt8], at offset: UInt64, _ side: Side) {
        let endpoint = endpoints[side.rawValue]
        let have = UInt64(endpoint.received.count)
        guard offset <= have else {
            report.violations.append("\(side) was handed bytes at offset \(offset) beyond its \(have): a gap")
            return
        }
        let overlap = Int(min(have - offset, UInt64(bytes.count)))
        if overlap > 0 {
            if parameters.exactlyOnceReads { report.violations.append("\(side) was offered \(overlap) bytes twice") }
            let start = Int(offset)
            if endpoint.received[start..<(start + overlap)] != bytes[..<overlap] {
                report.violations.append("\(side) was offered different bytes at offset \(offset) than before")
            }
            report.reofferedBytes += overlap
        }
        endpoint.received += bytes[overlap...]
        // Paced chunks of the other end that this app now holds completely.
        let sender = endpoints[1 - side.rawValue]
        while let first = sender.producedAt.first, first.end <= endpoint.received.count {
            report.deliveryLatencies.append(now - first.time)
            sender.producedAt.removeFirst()
        }
    }

    mutating func perform(_ action: StreamAction, _ side: Side) {
        let incarnation = endpoints[side.rawValue].incarnation
        let outboundChannel = side.rawValue
        let inboundChannel = 1 - side.rawValue
        switch action {
        case .write(let operation, let index, let bytes):
            endpoints[side.rawValue].inFlight[operation] = .write
            report.boxWrites += 1
            report.writesBySide[side.rawValue] += 1
            let kind = endpoints[side.rawValue].machine.unackedFrameKind(at: index)
            if kind == .ackOnly { report.ackOnlyWritesBySide[side.rawValue] += 1 }
            if let first = firstWritten[outboundChannel][index] {
                if first != bytes { report.violations.append("index \(index) of channel \(outboundChannel) written with two different contents") }
            } else {
                firstWritten[outboundChannel][index] = bytes
                if kind == .data || kind == .fin { report.dataBoxesBySide[side.rawValue] += 1 }
            }
            let latency = parameters.meanLatency.exponentialSample(&random)
            let roll = random.unit()
            let result: Result<Void, BoxTransportError>
            if roll < parameters.loss / 2 {
                result = .success(())  // Acknowledged, never stored.
            } else if roll < parameters.loss {
                result = .failure(BoxTransportError(.timeout, "simulated write failure"))
            } else {
                queue.push(now + latency.scaled(0.5), .writeLands(channel: outboundChannel, index: index, bytes: bytes))
                landing.insert(index << 1 | UInt64(outboundChannel))
                result = .success(())
            }
            if random.unit() < parameters.hang {
                report.hungOperations += 1  // Its box may land, but the completion never comes.
            } else {
                deliver(.writeDone(side, incarnation: incarnation, operation, result), after: latency)
            }
        case .read(let operation, let channel, let index, let mode):
            report.boxReads += 1
            let number = channel == .outbound ? outboundChannel : inboundChannel
            endpoints[side.rawValue].inFlight[operation] = .read(channel: number, index: index, own: channel == .outbound)
            if channel == .inbound {
                report.readsBySide[side.rawValue] += 1
                if boxes[number][index] == nil { report.emptyReadsBySide[side.rawValue] += 1 }
            }
            let latency = parameters.meanLatency.exponentialSample(&random)
            if random.unit() < parameters.hang {
                report.hungOperations += 1
            } else if random.unit() < parameters.loss {
                deliver(.readDone(side, incarnation: incarnation, operation, .failure(BoxTransportError(.timeout, "simulated read failure"))), after: latency)
            } else if let bytes = boxes[number][index] {
                deliver(.readDone(side, incarnation: incarnation, operation, .success(bytes)), after: latency)
            } else if mode == .poll {
                deliver(.readDone(side, incarnation: incarnation, operation, .success(nil)), after: latency)
            } else {
                let id = nextWaiterID
                nextWaiterID += 1
                waiters[id] = Waiter(id: id, side: side, incarnation: incarnation, operation: operation, channel: number, index: index)
                queue.push(now + parameters.waitTimeout, .waitTimeout(waiterID: id))
            }
        case .cancel(let operation):
            endpoints[side.rawValue].inFlight[operation] = nil  // Its completion, if any, is ignored by the machine.
        }
    }

    mutating func deliver(_ event: Event, after latency: Duration) {
        queue.push(now + latency, event)
        if random.unit() < parameters.duplication {
            queue.push(now + latency + parameters.meanLatency.exponentialSample(&random), event)
        }
    }

    mutating func land(channel: Int, index: UInt64, bytes: [UInt8]) {
        landing.remove(index << 1 | UInt64(channel))
        if let existing = boxes[channel][index] {
            if existing != bytes { report.violations.append("box \(index) of channel \(channel) overwritten with different bytes") }
            return
        }
        boxes[channel][index] = bytes
        // In waiter order: iterating the dictionary itself would draw random numbers in an
        // order that changes with Swift's per-process hash seed.
        for waiter in waiters.values.filter({ $0.channel == channel && $0.index == index }).sorted(by: { $0.id < $1.id }) {
            waiters[waiter.id] = nil
            let latency = parameters.meanLatency.exponentialSample(&random)
            queue.push(now + latency, .readDone(waiter.side, incarnation: waiter.incarnation, waiter.operation, .success(bytes)))
        }
    }

    // MARK: Persistence and crashes

    mutating func startPersist(_ side: Side) {
        guard !endpoints[side.rawValue].persistInFlight, let last = endpoints[side.rawValue].unpersisted.last else { return }
        endpoints[side.rawValue].persistInFlight = true
        let delay = parameters.meanPersistLatency.exponentialSample(&random)
        queue.push(now + delay, .persisted(side, incarnation: endpoints[side.rawValue].incarnation, through: last.sequence))
    }

    mutating func persisted(_ side: Side, through sequence: UInt64) {
        let endpoint = endpoints[side.rawValue]
        endpoint.persistInFlight = false
        let done = endpoint.unpersisted.prefix { $0.sequence <= sequence }
        endpoint.persistedRecords += done.map { $0.encoded() }
        endpoint.unpersisted.removeFirst(done.count)
        // Compact now and then: fold the durable journal into a new durable snapshot.
        if endpoint.persistedRecords.count >= 64 {
            do {
                var snapshot = try StreamCheckpoint(encoded: endpoint.snapshot)
                try snapshot.replay(endpoint.persistedRecords.map { bytes throws(StreamError) in try CheckpointRecord(encoded: bytes) })
                endpoint.snapshot = snapshot.encoded()
                endpoint.persistedRecords = []
            } catch {
                report.violations.append("\(side) compaction failed: \(error)")
            }
        }
        endpoint.machine.markDurable(through: sequence, now: now)
    }

    mutating func crash(_ side: Side) {
        report.crashes += 1
        let endpoint = endpoints[side.rawValue]
        report.sendStatisticsBySide[side.rawValue].add(endpoint.machine.sendStatistics)
        endpoint.incarnation += 1
        endpoint.inFlight = [:]
        endpoint.unpersisted = []
        endpoint.persistInFlight = false
        endpoint.timerAt = nil
        do {
            let snapshot = try StreamCheckpoint(encoded: endpoint.snapshot)
            let records = try endpoint.persistedRecords.map { bytes throws(StreamError) in try CheckpointRecord(encoded: bytes) }
            endpoint.machine = try StreamMachine(
                restoring: snapshot, journal: records, boxSize: parameters.boxSize, configuration: parameters.configuration,
                durability: .explicit, now: now, randomSeed: random.next())
        } catch {
            report.violations.append("\(side) restore failed: \(error)")
            return
        }
        let restored = endpoint.machine.checkpoint
        // Bytes acknowledged to the app must have survived.
        if restored.bytesWritten < UInt64(endpoint.acknowledged) {
            report.violations.append("\(side) lost acknowledged bytes: \(endpoint.acknowledged) acknowledged, \(restored.bytesWritten) restored")
        }
        // The app resumes writing from what the stream holds durably.
        endpoint.handedOver = Int(restored.bytesWritten)
        endpoint.acknowledged = endpoint.handedOver
        endpoint.writeAcks = []
        // The app keeps every byte it received and reads on from its own offset. The stream
        // never consumed more than that; consumes confirmed durable survived.
        endpoint.consumeScheduled = false
        endpoint.consumeAcks = []
        if restored.bytesConsumed > UInt64(endpoint.received.count) {
            report.violations.append("\(side) restored \(restored.bytesConsumed) bytes consumed but its app processed only \(endpoint.received.count)")
        }
        if parameters.exactlyOnceReads, restored.bytesConsumed < UInt64(endpoint.consumedDurably) {
            report.violations.append("\(side) lost durable consumes: \(endpoint.consumedDurably) confirmed, \(restored.bytesConsumed) restored")
        }
        if parameters.exactlyOnceReads, restored.bytesConsumed < UInt64(endpoint.received.count) { report.restoresBehindApp += 1 }
        checkDelivery(final: false)
    }

    mutating func checkDelivery(final: Bool) {
        guard endpoints.count == 2 else { return }
        for side in [Side.listener, .dialer] {
            let received = endpoints[side.rawValue].received
            let sent = endpoints[1 - side.rawValue].data
            if received.count > sent.count || received[...] != sent.prefix(received.count) {
                report.violations.append("\(side) received bytes that differ from what was sent (\(received.count) bytes)")
            } else if final && report.finished && received.count != sent.count {
                report.violations.append("\(side) received \(received.count) of \(sent.count) bytes")
            }
        }
    }
}

/// A min-heap of events by time, stable for equal times.
private struct EventQueue {
    private var heap: [(time: StreamTime, order: UInt64, event: World.Event)] = []
    private var counter: UInt64 = 0

    mutating func push(_ time: StreamTime, _ event: World.Event) {
        counter += 1
        heap.append((time, counter, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> (StreamTime, World.Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count, less(left, smallest) { smallest = left }
            if right < heap.count, less(right, smallest) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return (top.time, top.event)
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        heap[a].time < heap[b].time || (heap[a].time == heap[b].time && heap[a].order < heap[b].order)
    }
}

extension Duration {
    fileprivate func scaled(_ factor: Double) -> Duration { .nanoseconds(Int64(Double(nanosecondsClamped) * factor)) }
}
