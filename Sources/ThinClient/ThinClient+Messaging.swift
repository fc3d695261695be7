import CBOR
import Logging
import NIOCore
import ThinWire

extension ThinClient {
    /// Sends a message to a mixnet service and waits for its SURB reply (legacy `send_message`).
    ///
    /// The client picks a fresh 16-byte SURB ID, waits for the daemon's `message_sent_event`
    /// and then for the `message_reply_event` with that SURB ID. A reply queued by the daemon
    /// while the connection was down is still accepted after the session resumes.
    ///
    /// - Parameters:
    ///   - destination: BLAKE2b-256 of the service node's identity key (32 bytes); see
    ///     ``PKIDocument/services(capability:)``.
    ///   - queueID: the service endpoint (1 to 32 bytes).
    ///   - payload: at most the Sphinx `UserForwardPayloadLength`.
    ///   - timeout: how long to wait for the reply; ``ThinClientConfiguration/messageReplyTimeout`` if `nil`.
    /// - Throws: ``ThinClientError``: `daemonOffline` when the daemon has no mixnet link,
    ///   `messageSendFailed` when the daemon could not send, `timeout`, `invalidArgument`, …
    public func sendMessage(destination: [UInt8], queueID: [UInt8], payload: [UInt8], timeout: Duration? = nil) async throws
        -> MessageReply
    {
        let surbID = randomBytes(ThinSizes.surbID)
        let frame = try prepareSendMessage(destination: destination, queueID: queueID, payload: payload, surbID: surbID)
        try await admit(lane: .write)
        let link: Link
        do {
            link = try readyLink()
        } catch {
            pacer.abandonedBeforeSubmission()
            admitWaiters()
            throw error
        }
        resendingSequence += 1
        let sequence = resendingSequence
        pacer.submitted(sequence: sequence)
        let limit = timeout ?? configuration.messageReplyTimeout
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<MessageReply, any Error>) in
                var waiter = SURBWaiter(continuation: continuation, sent: nil, holdsSlot: true, sequence: sequence)
                waiter.timer = RequestTimer(after: limit, on: link.channel.eventLoop) { [weak self] in
                    Task { await self?.finishSURB(surbID, .failure(ThinClientError(.timeout, "no reply to send_message within \(limit)"))) }
                }
                surbWaiters[surbID] = waiter
                write(frame, on: link)
            }
        } onCancel: {
            Task { await self.finishSURB(surbID, .failure(ThinClientError(.cancelled, "send_message was cancelled"))) }
        }
    }

    /// Sends a message to a mixnet service without a SURB: nothing comes back.
    ///
    /// - Parameters:
    ///   - destination: BLAKE2b-256 of the service node's identity key (32 bytes).
    ///   - queueID: the service endpoint (1 to 32 bytes).
    ///   - payload: at most the Sphinx `UserForwardPayloadLength`.
    public func sendMessageWithoutReply(destination: [UInt8], queueID: [UInt8], payload: [UInt8]) async throws {
        let frame = try prepareSendMessage(destination: destination, queueID: queueID, payload: payload, surbID: nil)
        try await admit(lane: .write)
        let link: Link
        do {
            link = try readyLink()
        } catch {
            pacer.abandonedBeforeSubmission()
            admitWaiters()
            throw error
        }
        // The daemon answers nothing: the message stays in the model of its queue until a tick
        // (or a later answer) drains it.
        resendingSequence += 1
        pacer.submitted(sequence: resendingSequence)
        pacer.finished(answeredSequence: nil)
        try await link.channel.writeAndFlush(link.channel.allocator.buffer(bytes: frame))
    }

    private func prepareSendMessage(destination: [UInt8], queueID: [UInt8], payload: [UInt8], surbID: [UInt8]?) throws
        -> [UInt8]
    {
        guard !Task.isCancelled else { throw ThinClientError(.cancelled, "send_message was cancelled") }
        try checkLength(destination, ThinSizes.hash, "destination identity hash")
        guard (1...32).contains(queueID.count) else {
            throw ThinClientError(.invalidArgument, "recipient queue ID must be 1 to 32 bytes, got \(queueID.count)")
        }
        _ = try readyLink()
        guard daemonStatus?.isConnected == true else {
            throw ThinClientError(.daemonOffline, "kpclientd is not connected to the mixnet")
        }
        if let limit = daemonStatus?.sphinxGeometry?.userForwardPayloadLength, limit > 0, payload.count > limit {
            throw ThinClientError(.invalidArgument, "payload of \(payload.count) bytes exceeds the user forward payload length \(limit)")
        }
        var fields: [(String, CBORValue)] = [
            (ThinKey.Field.id, .null),
            (ThinKey.Field.withSURB, .bool(surbID != nil)),
        ]
        if let surbID { fields.append((ThinKey.Field.surbID, .bytes(surbID))) }
        fields += [
            (ThinKey.Field.destinationIDHash, .bytes(destination)),
            (ThinKey.Field.recipientQueueID, .bytes(queueID)),
            (ThinKey.Field.payload, .bytes(payload)),
        ]
        return try encodeFrame(ThinMessage(ThinKey.Request.sendMessage, fields))
    }

    /// Completes (or fails) the SURB waiter for `surbID`, if it is still waiting.
    func finishSURB(_ surbID: [UInt8], _ result: Result<MessageReply, ThinClientError>) {
        guard let waiter = surbWaiters.removeValue(forKey: surbID) else { return }
        waiter.timer?.cancel()
        if waiter.holdsSlot {
            pacer.finished(answeredSequence: nil)
            admitWaiters()
        }
        waiter.continuation.resume(with: result.mapError { $0 as any Error })
    }

    func handleMessageSent(_ message: ThinMessage) {
        let event: MessageSentEvent
        do {
            event = try MessageSentEvent(fields: message.fields)
        } catch {
            logger.debug("dropping an invalid message_sent_event", metadata: ["error": "\(error.message)"])
            return
        }
        publish(.messageSent(event))
        guard var waiter = surbWaiters[event.surbID] else { return }
        if let text = event.error {
            finishSURB(event.surbID, .failure(ThinClientError(.messageSendFailed, "kpclientd could not send the message: \(text)")))
            return
        }
        waiter.sent = event
        if waiter.holdsSlot {
            // The message left the daemon's queue (so did everything submitted before it).
            waiter.holdsSlot = false
            pacer.finished(answeredSequence: waiter.sequence)
            admitWaiters()
        }
        surbWaiters[event.surbID] = waiter
    }

    func handleMessageReply(_ message: ThinMessage) {
        let event: MessageReplyEvent
        do {
            event = try MessageReplyEvent(fields: message.fields)
        } catch {
            logger.debug("dropping an invalid message_reply_event", metadata: ["error": "\(error.message)"])
            return
        }
        publish(.messageReply(event))
        guard let waiter = surbWaiters[event.surbID] else { return }
        if let error = ThinClientError.thinClient(code: event.errorCode, context: "send_message") {
            finishSURB(event.surbID, .failure(error))
            return
        }
        let reply = MessageReply(surbID: event.surbID, payload: event.payload, sentAt: waiter.sent?.sentAt, replyETA: waiter.sent?.replyETA)
        finishSURB(event.surbID, .success(reply))
    }
}
