import Foundation
import StreamCrypto
import StreamEngine
import StreamEngineTesting

/// CPU cost per box, as a ratio to libsodium `secretbox` seal + open of the same number of
/// boxes measured in the same run (1× = libsodium alone).
///
/// Time is the process's CPU time (`CLOCK_PROCESS_CPUTIME_ID`, every thread), which other
/// processes on a shared machine disturb far less than the wall clock; the baseline is the
/// fastest of three passes.
///
/// Two subjects move `bytes` one way at zero latency:
/// - the `StreamMachine` pair alone, driven by a synchronous loop over an in-memory box map on
///   a virtual clock (what streamd's engine costs without any concurrency runtime);
/// - a `Stream` actor pair over `InMemoryBoxStore` (the async face, Tasks and actor hops included).
enum CPUBenchmark {
    /// One measurement: CPU seconds, box writes, and the libsodium CPU seconds for as many boxes.
    struct Result {
        var seconds: Double
        var boxWrites: Int
        var sodiumSeconds: Double
        var ratio: Double { seconds / sodiumSeconds }
    }

    /// The process's CPU time (all threads), in seconds.
    static func cpuNow() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// Which subjects to run.
    enum Subjects: String {
        case both, machine, stream
    }

    /// Runs the subjects `runs` times each and prints each ratio and the median.
    static func run(boxSize: Int, machineBytes: Int, streamBytes: Int, runs: Int, subjects: Subjects = .both) async {
        print("\nCPU against libsodium secretbox seal+open of as many boxes, same run (1x = libsodium alone); box \(boxSize) B")
        var machineRatios: [Double] = []
        for _ in 0..<(subjects == .stream ? 0 : runs) {
            let result = machinePair(boxSize: boxSize, bytes: machineBytes)
            machineRatios.append(result.ratio)
            print("  StreamMachine pair, \(machineBytes >> 20) MiB: \(format(result.seconds)) CPU s, \(result.boxWrites) box writes, libsodium \(format(result.sodiumSeconds)) CPU s, ratio \(String(format: "%.2f", result.ratio))x")
        }
        var streamRatios: [Double] = []
        for _ in 0..<(subjects == .machine ? 0 : runs) {
            let result = await streamPair(boxSize: boxSize, bytes: streamBytes)
            streamRatios.append(result.ratio)
            print("  Stream pair over InMemoryBoxStore, \(streamBytes >> 20) MiB: \(format(result.seconds)) CPU s, \(result.boxWrites) box writes, libsodium \(format(result.sodiumSeconds)) CPU s, ratio \(String(format: "%.2f", result.ratio))x")
        }
        print("median StreamMachine pair: \(String(format: "%.2f", median(machineRatios)))x (target <= 1.5x); Stream pair: \(String(format: "%.2f", median(streamRatios)))x (target <= 2x)")
    }

    /// Seals and opens `count` boxes of `boxSize` bytes with libsodium alone; returns the
    /// fewest CPU seconds of three passes.
    static func sodium(boxes count: Int, boxSize: Int) -> Double {
        let key = SecureRandom.bytes(SecretBox.keyLength)
        let nonce = SecureRandom.bytes(SecretBox.nonceLength)
        let plaintext = SecureRandom.bytes(boxSize - SecretBox.macLength)
        var sink = 0
        var best = Double.infinity
        for _ in 0..<3 {
            let start = cpuNow()
            for _ in 0..<count {
                let box = SecretBox.seal(plaintext, key: key, nonce: nonce)
                sink &+= Int(SecretBox.open(box, key: key, nonce: nonce)?[0] ?? 1)
            }
            best = min(best, cpuNow() - start)
        }
        if sink == -1 { print("unreachable") }
        return best
    }

    // MARK: - StreamMachine pair

    /// Moves `bytes` from a listener machine to a dialer machine; every transport operation
    /// completes at once (a read of an unwritten box waits until it is written).
    static func machinePair(boxSize: Int, bytes: Int) -> Result {
        var configuration = StreamConfiguration()
        configuration.sendWindow = 16
        configuration.readAhead = 18
        let address = StreamAddress.generate()
        var loop = MachineLoop(boxSize: boxSize)
        let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
        let start = cpuNow()
        var machines = [
            try! StreamMachine(address: address, role: .listener, boxSize: boxSize, configuration: configuration, now: .zero, randomSeed: 1),
            try! StreamMachine(address: address, role: .dialer, boxSize: boxSize, configuration: configuration, now: .zero, randomSeed: 2),
        ]
        var written = 0
        var received = 0
        while received < bytes {
            // The writer app keeps the send buffer full; the reader app drains everything.
            while written < bytes, case let capacity = inPlace(&machines[0], { $0.writeCapacity }), capacity > 0 {
                let take = min(chunk.count, bytes - written, capacity)
                written += try! machines[0].appWrite(chunk[..<take], now: loop.now).accepted
            }
            while true {
                let got = machines[1].appRead(maxLength: 1 << 20, now: loop.now).count
                if got == 0 { break }
                received += got
            }
            loop.collect(&machines)
            if !loop.deliverOne(&machines) {
                loop.fireTimers(&machines)
            }
        }
        let elapsed = cpuNow() - start
        return Result(seconds: elapsed, boxWrites: loop.boxWrites, sodiumSeconds: sodium(boxes: loop.boxWrites, boxSize: boxSize))
    }

    /// The zero-latency transport and virtual clock of ``machinePair(boxSize:bytes:)``.
    struct MachineLoop {
        struct Completion {
            var machine: Int
            var operation: OperationID
            var read: [UInt8]??
        }

        /// How many of the newest boxes of each channel the store keeps.
        static let keptBoxes: UInt64 = 4096

        /// A read waiting for an unwritten box.
        struct ParkedRead {
            var channel: Int
            var index: UInt64
            var machine: Int
            var operation: OperationID
        }

        let boxSize: Int
        var now = StreamTime.zero
        /// The newest ``keptBoxes`` boxes of channel `c`, box `i` in slot
        /// `c * keptBoxes + i % keptBoxes` of one flat ring (no nested array to make unique on
        /// every store): channel 0 is written by machine 0 (listener), 1 by machine 1.
        var boxes: [(index: UInt64, bytes: [UInt8])?] = Array(repeating: nil, count: 2 * Int(keptBoxes))
        /// Reads parked on unwritten boxes (a few read-aheads: a list is cheaper than a map).
        var parked: [ParkedRead] = []
        var completions: [Completion] = []
        var head = 0
        var boxWrites = 0

        init(boxSize: Int) { self.boxSize = boxSize }

        mutating func collect(_ machines: inout [StreamMachine]) {
            for m in machines.indices {
                for action in machines[m].takeActions() {
                    switch action {
                    case .write(let operation, let index, let bytes):
                        boxWrites += 1
                        if !hasBox(m, index) {
                            // Forget boxes far behind any reader (the window and read-ahead are
                            // 16 and 18): a heap growing page by page for the whole run would
                            // bill page faults to the machine.
                            boxes[slot(m, index)] = (index, bytes)
                            var p = 0
                            while p < parked.count {
                                guard parked[p].channel == m, parked[p].index == index else {
                                    p += 1
                                    continue
                                }
                                let waiter = parked.remove(at: p)
                                completions.append(Completion(machine: waiter.machine, operation: waiter.operation, read: .some(bytes)))
                            }
                        }
                        completions.append(Completion(machine: m, operation: operation, read: nil))
                    case .read(let operation, let channel, let index, let mode):
                        let c = channel == .outbound ? m : 1 - m
                        if let bytes = box(c, index) {
                            completions.append(Completion(machine: m, operation: operation, read: .some(bytes)))
                        } else if mode == .poll {
                            completions.append(Completion(machine: m, operation: operation, read: .some(nil)))
                        } else {
                            parked.append(ParkedRead(channel: c, index: index, machine: m, operation: operation))
                        }
                    case .cancel(let operation):
                        parked.removeAll { $0.operation == operation && $0.machine == m }
                    }
                }
            }
        }

        /// The ring slot of box `index` of channel `c`.
        func slot(_ c: Int, _ index: UInt64) -> Int { c * Int(Self.keptBoxes) + Int(index % Self.keptBoxes) }

        /// Box `index` of channel `c`, if it was written and is still kept.
        func box(_ c: Int, _ index: UInt64) -> [UInt8]? {
            guard let entry = boxes[slot(c, index)], entry.index == index else { return nil }
            return entry.bytes
        }

        /// Whether box `index` of channel `c` was written and is still kept (without taking its bytes).
        func hasBox(_ c: Int, _ index: UInt64) -> Bool { boxes[slot(c, index)]?.index == index }

        /// Delivers the oldest completion; false if none is queued.
        mutating func deliverOne(_ machines: inout [StreamMachine]) -> Bool {
            guard head < completions.count else {
                completions.removeAll(keepingCapacity: true)
                head = 0
                return false
            }
            let completion = completions[head]
            // Delivered entries must not keep their boxes: the queue drains only now and then,
            // and the boxes it held (up to 100 MB) made the heap grow page by page all run.
            completions[head].read = nil
            head += 1
            if head >= 4096 && head * 2 >= completions.count {
                completions.removeFirst(head)
                head = 0
            }
            if let read = completion.read {
                machines[completion.machine].readCompleted(completion.operation, result: .success(read), now: now)
            } else {
                machines[completion.machine].writeCompleted(completion.operation, result: .success(()), now: now)
            }
            return true
        }

        /// Advances the virtual clock to the earliest deadline and runs the timers due.
        mutating func fireTimers(_ machines: inout [StreamMachine]) {
            // In place: reading through the array's getter would copy each machine.
            guard let deadline = machines.indices.compactMap({ inPlace(&machines[$0]) { $0.nextDeadline } }).min() else {
                fatalError("the machine pair stalled with nothing in flight and no timer")
            }
            now = max(now, deadline)
            for m in machines.indices { machines[m].handleTimers(now: now) }
        }
    }

    // MARK: - Stream pair

    /// Moves `bytes` from a listener `Stream` to a dialer `Stream` over a zero-latency
    /// `InMemoryBoxStore`, writing 64 KiB at a time and reading until the peer's FIN.
    static func streamPair(boxSize: Int, bytes: Int) async -> Result {
        var storeConfiguration = InMemoryBoxStore.Configuration()
        storeConfiguration.payloadSize = boxSize
        // As the machine pair's harness: boxes far behind are dropped, so that the heap does
        // not grow page by page (77 MB per pass) at the pair's expense.
        storeConfiguration.forgetsBoxesBehind = Int(MachineLoop.keptBoxes)
        let store = InMemoryBoxStore(configuration: storeConfiguration)
        var configuration = StreamConfiguration()
        configuration.sendWindow = 16
        configuration.readAhead = 18
        let address = StreamAddress.generate()
        let start = cpuNow()
        do {
            let writer = try await Stream.listen(address: address, store: store, configuration: configuration)
            let reader = try await Stream.dial(address: address, store: store, configuration: configuration)
            async let received: Int = {
                var count = 0
                while let chunk = try await reader.read() { count += chunk.count }
                return count
            }()
            let chunk = [UInt8](repeating: 0xa5, count: 64 * 1024)
            var sent = 0
            while sent < bytes {
                let take = min(chunk.count, bytes - sent)
                try await writer.write(take == chunk.count ? chunk : Array(chunk[..<take]))
                sent += take
            }
            try await writer.close()
            let count = try await received
            precondition(count == bytes, "the reader got \(count) of \(bytes) bytes")
            await writer.halt()
            await reader.halt()
        } catch {
            fatalError("the Stream pair failed: \(error)")
        }
        let elapsed = cpuNow() - start
        let writes = await store.statistics().writes
        return Result(seconds: elapsed, boxWrites: writes, sodiumSeconds: sodium(boxes: writes, boxSize: boxSize))
    }

    // MARK: - Helpers

    /// Reads a property of a machine held in an array through an in-place access: reading it
    /// through the array's subscript getter copies the whole machine first.
    static func inPlace<T>(_ machine: inout StreamMachine, _ read: (inout StreamMachine) -> T) -> T { read(&machine) }

    static func format(_ seconds: Double) -> String { String(format: "%.3f", seconds) }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
