import CBOR
import Testing
import ThinWire

@testable import ThinClient

/// Pacing and deadlines of mixnet-path requests, against a scripted daemon over real sockets.
@Suite("thin client pacing and deadlines", .timeLimit(.minutes(1)))
struct PacingTests {
    typealias T = FakeDaemonProtocolTests

    static func writeRequest(hash: UInt8) -> ResendingRequest {
        let message = EncryptedMessage(
            messageCiphertext: [1], envelopeDescriptor: [2], envelopeHash: [UInt8](repeating: hash, count: 32),
            nextMessageBoxIndex: T.anyIndex
        )
        return .write(message, writeCapability: try! WriteCapability(bytes: [UInt8](repeating: 3, count: 168)))
    }

    static func pollRequest(hash: UInt8) -> ResendingRequest {
        var request = T.readRequest(hash: hash)
        request.noRetryOnBoxIDNotFound = true
        return request
    }

    static func hash(of message: ThinMessage) throws -> UInt8 {
        try message.fields.bytes(ThinKey.Field.envelopeHash, length: 32)[0]
    }

    static let success: [(String, CBORValue)] = [(ThinKey.Field.errorCode, .unsigned(0))]

    /// Connects with a daemon queue of `capacity` and (almost) no modelled ticks.
    static func connect(
        _ daemon: FakeDaemon, capacity: Int, configure: (inout ThinClientConfiguration) -> Void = { _ in }
    ) async throws -> (ThinClient, FakeConnection) {
        let (client, connection, _) = try await T.connect(daemon) {
            $0.daemonQueueCapacity = capacity
            $0.fallbackLambdaP = 1e-9
            configure(&$0)
        }
        return (client, connection)
    }

    @Test func theDaemonQueueIsBoundedAndWritesAndPollsGoBeforeWaitingReads() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection) = try await Self.connect(daemon, capacity: 2)
        var tasks: [Task<ResendingResult, any Error>] = []
        var sent: [ThinMessage] = []
        for n in 1...4 {
            tasks.append(Task { try await client.startResendingEncryptedMessage(T.readRequest(hash: UInt8(n))) })
            if n <= 2 { sent.append(try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)) }
            while await client.outstandingMixnetRequests + client.waitingMixnetRequests < n { try await Task.sleep(for: .milliseconds(1)) }
        }
        #expect(await client.unsentMixnetRequests == 2)
        #expect(await client.waitingMixnetRequests == 2)
        tasks.append(Task { try await client.startResendingEncryptedMessage(Self.pollRequest(hash: 8)) })
        while await client.waitingMixnetRequests < 3 { try await Task.sleep(for: .milliseconds(1)) }
        tasks.append(Task { try await client.startResendingEncryptedMessage(Self.writeRequest(hash: 9)) })
        while await client.waitingMixnetRequests < 4 { try await Task.sleep(for: .milliseconds(1)) }
        // Local requests are not paced.
        let counter = Task { try await client.messageBoxIndexCounter(of: T.anyIndex) }
        let local = try await connection.expect(ThinKey.Request.getMessageBoxIndexCounter)
        try connection.reply(to: local, [(ThinKey.Field.counter, .unsigned(1))] + Self.success)
        #expect(try await counter.value == 1)
        // The daemon answers read 2. Its queue is FIFO, so read 1 was sent too: two places free up,
        // for the write and then the poll, ahead of reads 3 and 4.
        try connection.reply(to: sent[1], [(ThinKey.Field.plaintext, .bytes([2]))] + Self.success)
        let next = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let after = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        #expect(try Self.hash(of: next) == 9)
        #expect(try Self.hash(of: after) == 8)
        #expect(try await tasks[1].value.plaintext == [2])
        #expect(await client.waitingMixnetRequests == 2)
        // Answering the rest lets reads 3 and 4 through, in order.
        try connection.reply(to: next, Self.success)
        try connection.reply(to: after, [(ThinKey.Field.errorCode, .unsigned(1))])
        let third = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let fourth = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        #expect(try [Self.hash(of: third), Self.hash(of: fourth)] == [3, 4])
        for message in [sent[0], third, fourth] {
            try connection.reply(to: message, [(ThinKey.Field.plaintext, .bytes([1]))] + Self.success)
        }
        _ = try await tasks[5].value
        await #expect {
            _ = try await tasks[4].value
        } throws: { error in
            (error as? ThinClientError)?.code == .boxIDNotFound
        }
        for n in [0, 2, 3] { #expect(try await tasks[n].value.plaintext == [1]) }
        #expect(await client.outstandingMixnetRequests == 0)
        #expect(await client.unsentMixnetRequests == 0)
        await client.close()
    }

    @Test func theModelledQueueDrainsAtLambdaPFromThePKIDocument() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        var configuration = daemon.clientConfiguration()
        configuration.daemonQueueCapacity = 2
        async let connecting = ThinClient.connect(configuration: configuration)
        let connection = try await daemon.nextConnection()
        // A handshake with a PKI document whose LambdaP is 0.02 per ms: a tick every 50 ms.
        connection.send(FakeConnection.status())
        let document = CBORValue.textMap([("Epoch", .unsigned(7)), ("LambdaP", .float(0.02))])
        connection.send(ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .bytes(document.encoded()))]))
        _ = try await connection.expect(ThinKey.Request.sessionToken)
        connection.send(ThinMessage(ThinKey.Event.sessionTokenReply, [(ThinKey.Field.appID, .bytes([UInt8](repeating: 7, count: 16))), (ThinKey.Field.resumed, .bool(false))]))
        let client = try await connecting
        #expect(await client.sendTicksPerSecond == 20)
        let start = ContinuousClock.now
        let reads = (0..<6).map { n in Task { try await client.startResendingEncryptedMessage(T.readRequest(hash: UInt8(n))) } }
        var arrivals: [Duration] = []
        for _ in 0..<6 {
            _ = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
            arrivals.append(ContinuousClock.now - start)
        }
        // Two at once, then one per modelled tick: the sixth at least four ticks after the start.
        #expect(arrivals[5] >= .milliseconds(195))
        #expect(arrivals[5] < .seconds(2))
        #expect(await client.outstandingMixnetRequests == 6)
        for read in reads { read.cancel() }
        await client.close()
    }

    @Test func aQueueDelayKeepsTheDaemonQueueToWhatLambdaPSendsInThatTime() {
        let t0 = ContinuousClock.now
        var pacer = SubmissionPacer(maxInFlight: 100, daemonQueueCapacity: 16, maxQueueDelay: .milliseconds(100), maxWaiters: 8, ticksPerSecond: 20, now: t0)
        #expect(pacer.daemonQueueCapacity == 2)
        var admitted = pacer.tryAdmit(lane: .write)
        #expect(admitted)
        pacer.submitted(sequence: 1)
        admitted = pacer.tryAdmit(lane: .write)
        #expect(admitted)
        pacer.submitted(sequence: 2)
        admitted = pacer.tryAdmit(lane: .write)
        #expect(!admitted)
        // A new PKI document: λP doubles, so does the room; never above the configured capacity.
        pacer.setRate(ticksPerSecond: 40, now: t0)
        #expect(pacer.daemonQueueCapacity == 4)
        admitted = pacer.tryAdmit(lane: .poll)
        #expect(admitted)
        pacer.setRate(ticksPerSecond: 1000, now: t0)
        #expect(pacer.daemonQueueCapacity == 16)
        // At least one request is always queued, however slow the ticks.
        pacer.setRate(ticksPerSecond: 0.001, now: t0)
        #expect(pacer.daemonQueueCapacity == 1)
        let unbounded = SubmissionPacer(maxInFlight: 100, daemonQueueCapacity: 16, maxWaiters: 8, ticksPerSecond: 0.001, now: t0)
        #expect(unbounded.daemonQueueCapacity == 16)
    }

    @Test func aQueueDelaySubmitsOnlyWhatTheDaemonSendsInThatTime() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        var configuration = daemon.clientConfiguration()
        configuration.maxDaemonQueueDelay = .seconds(250)
        async let connecting = ThinClient.connect(configuration: configuration)
        let connection = try await daemon.nextConnection()
        // LambdaP 0.00001 per ms: one tick per 100 s, so 250 s of queue is 2 requests.
        connection.send(FakeConnection.status())
        let document = CBORValue.textMap([("Epoch", .unsigned(7)), ("LambdaP", .float(0.00001))])
        connection.send(ThinMessage(ThinKey.Event.newPKIDocument, [(ThinKey.Field.payload, .bytes(document.encoded()))]))
        _ = try await connection.expect(ThinKey.Request.sessionToken)
        connection.send(ThinMessage(ThinKey.Event.sessionTokenReply, [(ThinKey.Field.appID, .bytes([UInt8](repeating: 7, count: 16))), (ThinKey.Field.resumed, .bool(false))]))
        let client = try await connecting
        let reads = (1...4).map { n in Task { try await client.startResendingEncryptedMessage(T.readRequest(hash: UInt8(n))) } }
        let first = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let second = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        while await client.waitingMixnetRequests < 2 { try await Task.sleep(for: .milliseconds(1)) }
        #expect(await client.unsentMixnetRequests == 2)
        #expect(await client.waitingMixnetRequests == 2)
        // The answer to the second proves both left the daemon's queue: the other two follow.
        try connection.reply(to: second, [(ThinKey.Field.plaintext, .bytes([2]))] + Self.success)
        let third = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let fourth = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        // The four reads are Tasks, which start in no set order: each reached the daemon once.
        let hashes = try [first, second, third, fourth].map(Self.hash(of:))
        #expect(Set(hashes) == [1, 2, 3, 4], "\(hashes)")
        #expect(try await reads[Int(hashes[1]) - 1].value.plaintext == [2])
        for read in reads { read.cancel() }
        await client.close()
    }

    @Test func aPassedDeadlineCancelsAtTheDaemonAndTimesOut() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection) = try await Self.connect(daemon, capacity: 16) {
            $0.operationDeadline = DeadlinePolicy(
                multiplier: 4, slop: .zero, floor: .milliseconds(150), ceiling: .seconds(2), initialRoundTrip: .milliseconds(10)
            )
        }
        #expect(await client.currentOperationDeadline == .milliseconds(150))
        let start = ContinuousClock.now
        let read = Task { try await client.startResendingEncryptedMessage(T.readRequest(hash: 0x51)) }
        let original = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        let cancel = try await connection.expect(ThinKey.Request.cancelResendingEncryptedMessage)
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        #expect(try cancel.fields.bytes(ThinKey.Field.envelopeHash, length: 32) == [UInt8](repeating: 0x51, count: 32))
        await #expect {
            _ = try await read.value
        } throws: { error in
            (error as? ThinClientError)?.code == .timeout
        }
        #expect(await client.outstandingMixnetRequests == 0)
        try connection.reply(to: original, [(ThinKey.Field.errorCode, .unsigned(24))])
        try connection.reply(to: cancel, Self.success)
        // A per-request deadline overrides the policy; .none waits for ever.
        var patient = T.readRequest(hash: 0x52)
        patient.deadline = .none
        let waiting = Task { try await client.startResendingEncryptedMessage(patient) }
        let request = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
        try await Task.sleep(for: .milliseconds(300))
        try connection.reply(to: request, [(ThinKey.Field.plaintext, .bytes([5]))] + Self.success)
        #expect(try await waiting.value.plaintext == [5])
        await client.close()
    }

    @Test func theDeadlineFollowsTheMeasuredRoundTrip() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let policy = DeadlinePolicy(multiplier: 3, slop: .milliseconds(100), floor: .milliseconds(150), ceiling: .seconds(5), initialRoundTrip: .seconds(1))
        let (client, connection) = try await Self.connect(daemon, capacity: 16) { $0.operationDeadline = policy }
        #expect(await client.smoothedRoundTrip == nil)
        #expect(await client.currentOperationDeadline == .milliseconds(3100))
        for n in 0..<4 {
            let poll = Task { try await client.startResendingEncryptedMessage(Self.pollRequest(hash: UInt8(n))) }
            let request = try await connection.expect(ThinKey.Request.startResendingEncryptedMessage)
            try await Task.sleep(for: .milliseconds(100))
            try connection.reply(to: request, [(ThinKey.Field.errorCode, .unsigned(1))])
            _ = await poll.result
        }
        let srtt = try #require(await client.smoothedRoundTrip)
        #expect(srtt >= .milliseconds(100) && srtt < .milliseconds(400))
        let deadline = try #require(await client.currentOperationDeadline)
        #expect(deadline >= .milliseconds(400) && deadline < .milliseconds(1300))
        // The policy's arithmetic.
        #expect(policy.deadline(smoothedRoundTrip: .seconds(10)) == .seconds(5))
        #expect(policy.deadline(smoothedRoundTrip: .milliseconds(1)) == .milliseconds(150))
        await client.close()
    }

    @Test func copyPayloadsAreLimitedPerDestination() async throws {
        let daemon = try await FakeDaemon.start()
        defer { Task { await daemon.stop() } }
        let (client, connection) = try await Self.connect(daemon, capacity: 16)
        let cap = try WriteCapability(bytes: [UInt8](repeating: 3, count: 168))
        let big = [UInt8](repeating: 1, count: ThinClient.maxCopyPayloadLength)
        // Two destinations of 10 MiB each: 20 MiB in total is accepted (the daemon checks each).
        let call = Task {
            try await client.createCourierEnvelopesFromMultiPayload(
                [CourierDestination(payload: big, writeCapability: cap, startIndex: T.anyIndex),
                 CourierDestination(payload: big, writeCapability: cap, startIndex: T.anyIndex)],
                isStart: true, isLast: true
            )
        }
        let request = try await connection.expect(ThinKey.Request.createCourierEnvelopesFromMultiPayload)
        try connection.reply(to: request, [(ThinKey.Field.envelopes, .array([]))] + Self.success)
        _ = try await call.value
        // One destination above 10 MiB is refused locally.
        await #expect {
            _ = try await client.createCourierEnvelopesFromMultiPayload(
                [CourierDestination(payload: big + [1], writeCapability: cap, startIndex: T.anyIndex)], isStart: true, isLast: true
            )
        } throws: { error in
            (error as? ThinClientError)?.code == .invalidArgument
        }
        await client.close()
    }
}
