import CBOR
import KpclientdSim
import StreamCrypto
import Testing
import ThinWire

@testable import ThinClient

/// The Swift thin client against the in-process kpclientd simulator, over real sockets.
@Suite("thin client against kpclientd-sim", .timeLimit(.minutes(2)))
struct ThinClientSimTests {
    static func busy(_ harness: SimHarness) async -> Bool {
        let statistics = await harness.sim.statistics()
        return statistics.inFlightOperations > 0 || statistics.blockedReads > 0
    }

    // MARK: Handshake and state

    @Test(arguments: SimHarness.Transport.allCases)
    func handshakeOverEveryTransport(transport: SimHarness.Transport) async throws {
        let harness = try await SimHarness.start(transport)
        let client = try await harness.client()
        #expect(await client.isSessionEstablished)
        #expect(await client.isConnected)
        let status = try #require(await client.daemonStatus)
        #expect(status.instanceToken == harness.sim.instanceToken)
        #expect(status.pigeonholeGeometry == harness.sim.pigeonholeGeometry)
        #expect(status.sphinxGeometry == harness.sim.sphinxGeometry)
        let document = try #require(await client.pkiDocument)
        #expect(document.epoch != nil)
        let echo = try #require(document.services(capability: "echo").first)
        #expect(echo.endpoint == "echo")
        #expect(BLAKE2b.hash(echo.identityKey, outputLength: 32) == harness.sim.echoServiceIdentityHash)
        await client.close()
        await harness.stop()
    }

    @Test func daemonOfflineIsReportedAndMessagesRefused() async throws {
        let harness = try await SimHarness.start { $0.isConnectedToMixnet = false }
        let client = try await harness.client()
        #expect(await client.isSessionEstablished)
        #expect(await !client.isConnected)
        await #expect {
            _ = try await client.sendMessage(destination: harness.sim.echoServiceIdentityHash, queueID: Array("echo".utf8), payload: [1])
        } throws: { error in
            (error as? ThinClientError)?.code == .daemonOffline
        }
        // Local requests still work offline.
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 1))
        #expect(keys.firstMessageIndex.bytes.count == 104)
        await client.close()
        await harness.stop()
    }

    // MARK: Legacy messaging

    @Test func sendMessageEchoesAndWithoutReplyReturns() async throws {
        let harness = try await SimHarness.start { $0.meanLatency = .milliseconds(5) }
        let client = try await harness.client()
        let events = try await client.events()
        let payload = testBytes(200, seed: 7)
        let reply = try await client.sendMessage(destination: harness.sim.echoServiceIdentityHash, queueID: Array("echo".utf8), payload: payload)
        #expect(Array(reply.payload.prefix(payload.count)) == payload)
        #expect(reply.surbID.count == 16)
        #expect(reply.sentAt != nil)
        #expect(reply.replyETA != nil)
        #expect(await waitForEvent(events) { if case .messageReply(let e) = $0 { return e.surbID == reply.surbID } else { return false } } != nil)
        try await client.sendMessageWithoutReply(destination: harness.sim.echoServiceIdentityHash, queueID: Array("echo".utf8), payload: payload)
        // A service that never answers times out.
        await #expect {
            _ = try await client.sendMessage(
                destination: harness.sim.echoServiceIdentityHash, queueID: Array("nobody".utf8), payload: [1], timeout: .milliseconds(200)
            )
        } throws: { error in
            (error as? ThinClientError)?.code == .timeout
        }
        // Invalid arguments are refused before sending.
        let limit = harness.sim.sphinxGeometry.userForwardPayloadLength
        for (destination, queue, body) in [
            ([UInt8](repeating: 0, count: 31), Array("echo".utf8), [UInt8]()),
            (harness.sim.echoServiceIdentityHash, [UInt8](), [UInt8]()),
            (harness.sim.echoServiceIdentityHash, [UInt8](repeating: 1, count: 33), [UInt8]()),
            (harness.sim.echoServiceIdentityHash, Array("echo".utf8), [UInt8](repeating: 0, count: limit + 1)),
        ] {
            await #expect {
                _ = try await client.sendMessage(destination: destination, queueID: queue, payload: body)
            } throws: { error in
                (error as? ThinClientError)?.code == .invalidArgument
            }
        }
        #expect(await client.outstandingMixnetRequests == 0)
        await client.close()
        await harness.stop()
    }

    // MARK: PKI and directory

    @Test func pkiDocumentAndDirectoryAuthorities() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let current = try await client.getPKIDocument()
        #expect(current.payload?.isEmpty == false)
        let epoch = try #require(await client.pkiDocument?.epoch)
        #expect(current.epoch == epoch)
        let explicit = try await client.getPKIDocument(epoch: epoch)
        #expect(explicit.epoch == epoch)
        await #expect {
            _ = try await client.getPKIDocument(epoch: epoch + 1000)
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .serviceUnavailable && error?.daemonErrorCode == 10 && error?.namespace == .thinClient
        }
        let authorities = try await client.getDirectoryAuthorities()
        #expect(!authorities.isEmpty)
        for authority in authorities {
            #expect(!authority.identifier.isEmpty)
            #expect(authority.identityKeyHash.count == 32)
        }
        await client.close()
        await harness.stop()
    }

    // MARK: Keys and indexes

    @Test func keypairsAreDeterministicAndIndexesAdvance() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let seed = testBytes(32, seed: 9)
        let a = try await client.newKeypair(seed: seed)
        let b = try await client.newKeypair(seed: seed)
        let other = try await client.newKeypair(seed: testBytes(32, seed: 10))
        #expect(a == b)
        #expect(a.writeCapability != other.writeCapability)
        #expect(a.writeCapability.readCapability == a.readCapability)
        #expect(a.readCapability.embeddedIndex == a.firstMessageIndex)
        #expect(a.writeCapability.embeddedIndex == a.firstMessageIndex)
        let counter = try await client.messageBoxIndexCounter(of: a.firstMessageIndex)
        #expect(counter == a.firstMessageIndex.counter)
        let next = try await client.nextMessageBoxIndex(after: a.firstMessageIndex)
        #expect(next != a.firstMessageIndex)
        #expect(try await client.messageBoxIndexCounter(of: next) == counter &+ 1)
        #expect(try await client.nextMessageBoxIndex(after: a.firstMessageIndex) == next, "successors are deterministic")
        await client.close()
        await harness.stop()
    }

    // MARK: Encrypt and ARQ

    @Test func writeThenReadRoundTrip() async throws {
        let harness = try await SimHarness.start(.unix)
        let client = try await harness.client()
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 11))
        let plaintext = testBytes(harness.sim.pigeonholeGeometry.maxPlaintextPayloadLength, seed: 3)
        let write = try await client.encryptWrite(plaintext: plaintext, writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
        let again = try await client.encryptWrite(plaintext: plaintext, writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
        #expect(write.envelopeHash != again.envelopeHash, "envelope hashes are unique per call")
        #expect(write.nextMessageBoxIndex == (try await client.nextMessageBoxIndex(after: keys.firstMessageIndex)))
        let written = try await client.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
        #expect(written.plaintext == nil)
        let read = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        let result = try await client.startResendingEncryptedMessage(.read(read, readCapability: keys.readCapability, index: keys.firstMessageIndex))
        #expect(result.plaintext == plaintext)
        #expect(result.courierIdentityHash?.count == 32)
        // An empty plaintext is allowed (a tombstone); one byte more than the box is InvalidRequest.
        await #expect {
            _ = try await client.encryptWrite(
                plaintext: plaintext + [0], writeCapability: keys.writeCapability, index: keys.firstMessageIndex
            )
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .invalidRequest && error?.daemonErrorCode == 3
        }
        await client.close()
        await harness.stop()
    }

    @Test func writeResultsWithNoIdempotentFlag() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 12))
        let index = keys.firstMessageIndex
        func write(_ plaintext: [UInt8], strict: Bool) async throws {
            let message = try await client.encryptWrite(plaintext: plaintext, writeCapability: keys.writeCapability, index: index)
            _ = try await client.startResendingEncryptedMessage(
                .write(message, writeCapability: keys.writeCapability, noIdempotentBoxAlreadyExists: strict)
            )
        }
        try await write([1, 2, 3], strict: true)
        try await write([1, 2, 3], strict: true)  // identical rewrite: success at the replica
        await #expect {
            try await write([4, 5, 6], strict: true)
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .boxAlreadyExists && error?.namespace == .replica && error?.daemonErrorCode == 10
        }
        try await write([4, 5, 6], strict: false)  // default: success at the courier's ACK
        await client.close()
        await harness.stop()
    }

    @Test func readsPollWaitAndSeeTombstones() async throws {
        let harness = try await SimHarness.start { $0.meanLatency = .milliseconds(2) }
        let writer = try await harness.client()
        let reader = try await harness.client()
        let keys = try await writer.newKeypair(seed: testBytes(32, seed: 13))
        let index = keys.firstMessageIndex
        // Poll on an empty box: BoxIDNotFound at once.
        let poll = try await reader.encryptRead(readCapability: keys.readCapability, index: index)
        await #expect {
            _ = try await reader.startResendingEncryptedMessage(
                .read(poll, readCapability: keys.readCapability, index: index, noRetryOnBoxIDNotFound: true)
            )
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .boxIDNotFound && error?.namespace == .replica && error?.isTransient == true
        }
        // A default read waits until another client writes the box.
        let waitRead = try await reader.encryptRead(readCapability: keys.readCapability, index: index)
        let waiting = Task { try await reader.startResendingEncryptedMessage(.read(waitRead, readCapability: keys.readCapability, index: index)) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let write = try await writer.encryptWrite(plaintext: [42], writeCapability: keys.writeCapability, index: index)
        _ = try await writer.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
        #expect(try await waiting.value.plaintext == [42])
        // A tombstone overwrites the box; reading it is Tombstone (11).
        let tombstone = try await writer.encryptWrite(plaintext: [], writeCapability: keys.writeCapability, index: index)
        _ = try await writer.startResendingEncryptedMessage(.write(tombstone, writeCapability: keys.writeCapability))
        let afterTombstone = try await reader.encryptRead(readCapability: keys.readCapability, index: index)
        await #expect {
            _ = try await reader.startResendingEncryptedMessage(.read(afterTombstone, readCapability: keys.readCapability, index: index))
        } throws: { error in
            (error as? ThinClientError)?.code == .tombstone
        }
        await writer.close()
        await reader.close()
        await harness.stop()
    }

    @Test func cancellationByHashAndByTask() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 14))
        // Explicit cancel: the original request fails with StartResendingCancelled (24).
        let first = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        let read = Task { try await client.startResendingEncryptedMessage(.read(first, readCapability: keys.readCapability, index: keys.firstMessageIndex)) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        try await client.cancelResendingEncryptedMessage(envelopeHash: first.envelopeHash)
        await #expect {
            _ = try await read.value
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .startResendingCancelled && error?.daemonErrorCode == 24
        }
        // Unknown hashes succeed.
        try await client.cancelResendingEncryptedMessage(envelopeHash: [UInt8](repeating: 0xEE, count: 32))
        // Task cancellation sends the cancel: the daemon's operation ends.
        let second = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        let task = Task { try await client.startResendingEncryptedMessage(.read(second, readCapability: keys.readCapability, index: keys.firstMessageIndex)) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        await #expect {
            _ = try await task.value
        } throws: { error in
            (error as? ThinClientError)?.code == .cancelled
        }
        // The daemon's operation ends (and its box waiter goes away).
        while await Self.busy(harness) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await client.outstandingMixnetRequests == 0)
        await client.close()
        await harness.stop()
    }

    @Test func errorCodeNamespaceCollisionInResendingReplies() async throws {
        let harness = try await SimHarness.start { $0.maxOperationsPerSession = 1 }
        let client = try await harness.client()
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 15))
        // Code 3 (the replica's InvalidSignature, or the daemon's InvalidRequest) has its own unit
        // tests: the real daemon does not check a write capability against its envelope, so
        // neither does the simulator, and no request here can make it answer 3.
        let message = try await client.encryptWrite(plaintext: [1], writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
        // Too many operations in flight: the daemon answers 4 (InternalError).
        let blocking = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        let blocked = Task { try await client.startResendingEncryptedMessage(.read(blocking, readCapability: keys.readCapability, index: keys.firstMessageIndex)) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        let extra = try await client.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        await #expect {
            _ = try await client.startResendingEncryptedMessage(.read(extra, readCapability: keys.readCapability, index: keys.firstMessageIndex))
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .databaseFailure && error?.alternativeCode == .internalError && error?.isTransient == true
        }
        blocked.cancel()
        _ = await blocked.result
        // Requests with both or neither capability are refused locally.
        var both = ResendingRequest.write(message, writeCapability: keys.writeCapability)
        both.readCapability = keys.readCapability
        await #expect(throws: ThinClientError.self) { _ = try await client.startResendingEncryptedMessage(both) }
        await client.close()
        await harness.stop()
    }

    // MARK: Copy commands and tombstones

    @Test func copyCommandWritesThePayloadToItsDestination() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let m = harness.sim.pigeonholeGeometry.maxPlaintextPayloadLength
        let destination = try await client.newKeypair(seed: testBytes(32, seed: 20))
        let temporary = try await client.newKeypair(seed: testBytes(32, seed: 21))
        let payload = testBytes(3 * m, seed: 5)
        let envelopes = try await client.createCourierEnvelopesFromPayload(
            payload, destinationWriteCapability: destination.writeCapability, destinationStartIndex: destination.firstMessageIndex,
            isStart: true, isLast: true
        )
        #expect(!envelopes.envelopes.isEmpty)
        #expect(envelopes.envelopes.allSatisfy { $0.count <= m })
        // Write every element to the temporary stream, then ask for the copy.
        var index = temporary.firstMessageIndex
        for element in envelopes.envelopes {
            let write = try await client.encryptWrite(plaintext: element, writeCapability: temporary.writeCapability, index: index)
            _ = try await client.startResendingEncryptedMessage(.write(write, writeCapability: temporary.writeCapability))
            index = write.nextMessageBoxIndex
        }
        try await client.startResendingCopyCommand(writeCapability: temporary.writeCapability)
        // The destination holds the payload in chunks of M - 4 bytes.
        var collected: [UInt8] = []
        var readIndex = destination.firstMessageIndex
        while readIndex != envelopes.nextDestinationIndex {
            let read = try await client.encryptRead(readCapability: destination.readCapability, index: readIndex)
            let result = try await client.startResendingEncryptedMessage(
                .read(read, readCapability: destination.readCapability, index: readIndex, noRetryOnBoxIDNotFound: true)
            )
            collected += result.plaintext ?? []
            readIndex = read.nextMessageBoxIndex
        }
        #expect(collected == payload)
        await client.close()
        await harness.stop()
    }

    @Test func multiPayloadTombstoneRangeAndCopyFailure() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        let first = try await client.newKeypair(seed: testBytes(32, seed: 30))
        let second = try await client.newKeypair(seed: testBytes(32, seed: 31))
        let multi = try await client.createCourierEnvelopesFromMultiPayload(
            [
                CourierDestination(payload: testBytes(100, seed: 1), writeCapability: first.writeCapability, startIndex: first.firstMessageIndex),
                CourierDestination(payload: testBytes(200, seed: 2), writeCapability: second.writeCapability, startIndex: second.firstMessageIndex),
            ],
            isStart: true, isLast: true
        )
        #expect(!multi.envelopes.isEmpty)
        #expect(multi.nextDestinationIndices.count == 2)
        #expect(multi.nextDestinationIndices[0] == (try await client.nextMessageBoxIndex(after: first.firstMessageIndex)))
        let partial = try await client.createCourierEnvelopesFromTombstoneRange(
            destinationWriteCapability: first.writeCapability, destinationStartIndex: first.firstMessageIndex, maxCount: 3,
            isStart: true, isLast: false
        )
        var expectedNext = first.firstMessageIndex
        for _ in 0..<3 { expectedNext = try await client.nextMessageBoxIndex(after: expectedNext) }
        #expect(partial.nextDestinationIndex == expectedNext)
        let none = try await client.createCourierEnvelopesFromTombstoneRange(
            destinationWriteCapability: first.writeCapability, destinationStartIndex: first.firstMessageIndex, maxCount: 0,
            isStart: false, isLast: true, buffer: partial.buffer
        )
        #expect(none.nextDestinationIndex == first.firstMessageIndex)

        // Client-side tombstone_range: one encrypt_write of [] per box.
        let range = try await client.tombstoneRange(writeCapability: first.writeCapability, start: first.firstMessageIndex, maxCount: 3)
        #expect(range.envelopes.count == 3)
        #expect(range.envelopes[0].boxIndex == first.firstMessageIndex)
        #expect(range.next == expectedNext)
        #expect(Set(range.envelopes.map(\.message.envelopeHash)).count == 3)

        // A copy into a box that already holds other bytes fails at envelope 1 with BoxAlreadyExists.
        let occupied = try await client.encryptWrite(plaintext: [9], writeCapability: first.writeCapability, index: first.firstMessageIndex)
        _ = try await client.startResendingEncryptedMessage(.write(occupied, writeCapability: first.writeCapability))
        let temporary = try await client.newKeypair(seed: testBytes(32, seed: 32))
        let envelopes = try await client.createCourierEnvelopesFromPayload(
            [1, 2, 3], destinationWriteCapability: first.writeCapability, destinationStartIndex: first.firstMessageIndex,
            isStart: true, isLast: true
        )
        var index = temporary.firstMessageIndex
        for element in envelopes.envelopes {
            let write = try await client.encryptWrite(plaintext: element, writeCapability: temporary.writeCapability, index: index)
            _ = try await client.startResendingEncryptedMessage(.write(write, writeCapability: temporary.writeCapability))
            index = write.nextMessageBoxIndex
        }
        await #expect {
            try await client.startResendingCopyCommand(writeCapability: temporary.writeCapability)
        } throws: { error in
            let error = error as? ThinClientError
            return error?.code == .copyCommandFailed && error?.replicaErrorCode == 10 && error?.failedEnvelopeIndex == 1
        }
        await client.close()
        await harness.stop()
    }

    @Test func cancellingACopyCommandTaskCancelsItAtTheDaemon() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client()
        // The temporary stream is empty, so the courier keeps waiting for its first element.
        let temporary = try await client.newKeypair(seed: testBytes(32, seed: 40))
        let copy = Task { try await client.startResendingCopyCommand(writeCapability: temporary.writeCapability) }
        while await harness.sim.statistics().inFlightOperations < 1 { try await Task.sleep(for: .milliseconds(5)) }
        copy.cancel()
        await #expect {
            try await copy.value
        } throws: { error in
            (error as? ThinClientError)?.code == .cancelled
        }
        while await harness.sim.statistics().inFlightOperations > 0 { try await Task.sleep(for: .milliseconds(5)) }
        // The explicit cancel by hash works too (and answers 0 for unknown copies).
        try await client.cancelResendingCopyCommand(writeCapabilityHash: ThinClient.writeCapabilityHash(temporary.writeCapability))
        await client.close()
        await harness.stop()
    }

    // MARK: Reconnection

    @Test(arguments: [SimHarness.Transport.tcp, .unix])
    func anInFlightReadSurvivesADisconnect(transport: SimHarness.Transport) async throws {
        let harness = try await SimHarness.start(transport) { $0.meanLatency = .milliseconds(2) }
        let reader = try await harness.client()
        let writer = try await harness.client()
        let events = try await reader.events()
        let writerEvents = try await writer.events()
        let keys = try await writer.newKeypair(seed: testBytes(32, seed: 50))
        let message = try await reader.encryptRead(readCapability: keys.readCapability, index: keys.firstMessageIndex)
        let read = Task { try await reader.startResendingEncryptedMessage(.read(message, readCapability: keys.readCapability, index: keys.firstMessageIndex)) }
        while await harness.sim.statistics().blockedReads < 1 { try await Task.sleep(for: .milliseconds(5)) }
        // The daemon drops every connection mid-read.
        await harness.sim.disconnectAllClients()
        #expect(await waitForEvent(events) { $0 == .disconnected(graceful: false) } != nil)
        #expect(await waitForEvent(events) { $0 == .connected(resumed: true) } != nil)
        #expect(await waitForEvent(writerEvents) { $0 == .connected(resumed: true) } != nil)
        let write = try await writer.encryptWrite(plaintext: [7, 7], writeCapability: keys.writeCapability, index: keys.firstMessageIndex)
        _ = try await writer.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
        // The replayed read (same query ID, same envelope) completes.
        #expect(try await read.value.plaintext == [7, 7])
        #expect(await reader.outstandingMixnetRequests == 0)
        await reader.close()
        await writer.close()
        await harness.stop()
    }

    @Test func aSURBReplyQueuedDuringADisconnectIsDeliveredAfterResume() async throws {
        let harness = try await SimHarness.start { $0.meanLatency = .milliseconds(150) }
        let client = try await harness.client()
        let events = try await client.events()
        let payload = testBytes(64, seed: 77)
        let sending = Task {
            try await client.sendMessage(
                destination: harness.sim.echoServiceIdentityHash, queueID: Array("echo".utf8), payload: payload, timeout: .seconds(30)
            )
        }
        #expect(await waitForEvent(events) { if case .messageSent = $0 { return true } else { return false } } != nil)
        #expect(await client.outstandingMixnetRequests == 0, "the slot is free once the message left the daemon")
        await harness.sim.disconnectAllClients()
        #expect(await waitForEvent(events) { $0 == .connected(resumed: true) } != nil)
        let reply = try await sending.value
        #expect(Array(reply.payload.prefix(payload.count)) == payload)
        await client.close()
        await harness.stop()
    }

    @Test func requestsFailFastWhileDisconnectedAndShutdownIsGraceful() async throws {
        let harness = try await SimHarness.start()
        let client = try await harness.client { $0.reconnect = ReconnectPolicy(initialDelay: .seconds(30), maximumDelay: .seconds(30)) }
        let events = try await client.events()
        await harness.sim.shutdown()
        #expect(await waitForEvent(events) { $0 == .shutdown } != nil)
        #expect(await waitForEvent(events) { $0 == .disconnected(graceful: true) } != nil)
        #expect(await !client.isConnected)
        await #expect {
            _ = try await client.newKeypair(seed: testBytes(32, seed: 1))
        } throws: { error in
            (error as? ThinClientError)?.code == .notConnected
        }
        await client.close()
    }

    // MARK: Bounds

    @Test func theLimiterKeepsTheDaemonQueueBelowItsCapacity() async throws {
        let harness = try await SimHarness.start { $0.rate = 2000 }
        let client = try await harness.client { $0.maxOutstandingMixnetRequests = 4; $0.maxWaitingMixnetRequests = 3 }
        let keys = try await client.newKeypair(seed: testBytes(32, seed: 60))
        var index = keys.firstMessageIndex
        var reads: [Task<ResendingResult, any Error>] = []
        var indexes: [MessageBoxIndex] = []
        for _ in 0..<7 {
            let message = try await client.encryptRead(readCapability: keys.readCapability, index: index)
            let boxIndex = index
            reads.append(Task { try await client.startResendingEncryptedMessage(.read(message, readCapability: keys.readCapability, index: boxIndex)) })
            indexes.append(index)
            index = message.nextMessageBoxIndex
        }
        while await harness.sim.statistics().blockedReads < 4 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(await client.outstandingMixnetRequests == 4)
        // Three more wait in the FIFO; the eighth is refused at once.
        let extra = try await client.encryptRead(readCapability: keys.readCapability, index: index)
        while await client.waitingMixnetRequests < 3 { try await Task.sleep(for: .milliseconds(5)) }
        await #expect {
            _ = try await client.startResendingEncryptedMessage(.read(extra, readCapability: keys.readCapability, index: index))
        } throws: { error in
            (error as? ThinClientError)?.code == .tooManyPendingRequests
        }
        // Local requests do not wait behind the limiter.
        _ = try await client.nextMessageBoxIndex(after: index)
        #expect(await harness.sim.statistics().blockedReaders == 0)
        // A second client writes every box; all reads complete.
        let writer = try await harness.client()
        for (n, boxIndex) in indexes.enumerated() {
            let write = try await writer.encryptWrite(plaintext: [UInt8(n)], writeCapability: keys.writeCapability, index: boxIndex)
            _ = try await writer.startResendingEncryptedMessage(.write(write, writeCapability: keys.writeCapability))
        }
        for (n, read) in reads.enumerated() {
            #expect(try await read.value.plaintext == [UInt8(n)])
        }
        #expect(await client.outstandingMixnetRequests == 0)
        await writer.close()
        await client.close()
        await harness.stop()
    }
}
