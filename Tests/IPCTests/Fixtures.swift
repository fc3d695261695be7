import IPC

/// Sample values covering every request, reply, event and error field.
enum Fixtures {
    static func name(_ text: String) -> StreamName {
        do { return try StreamName(text) } catch { fatalError("fixture name \(text): \(error)") }
    }

    static let chat = name("chat")
    static let instance: [UInt8] = Array(0..<16)

    static let requests: [IPCRequest] = [
        .hello(minVersion: 1, maxVersion: 3, client: "test-client/1.0"),
        .hello(minVersion: 1, maxVersion: 1, client: nil),
        .create(name: chat, mode: .stream),
        .create(name: name("news.feed_1"), mode: .multicast),
        .join(name: name("peer-2"), address: "streamd1qexampleaddress"),
        .list,
        .status(name: chat),
        .address(name: chat, readOnly: true),
        .address(name: chat, readOnly: false),
        .close(name: chat, wait: true),
        .close(name: chat, wait: false),
        .remove(name: chat),
        .write(name: chat, offset: 0, data: []),
        .write(name: chat, offset: UInt64.max - 1, data: Array(repeating: 0xab, count: IPCLimits.maxChunk)),
        .read(name: chat, offset: 1 << 40, maxLength: 1, wait: false),
        .read(name: chat, offset: 7, maxLength: IPCLimits.maxChunk, wait: true),
        .consume(name: chat, offset: 12_345),
        .sync(name: chat),
        .subscribe(names: nil),
        .subscribe(names: []),
        .subscribe(names: [chat, name("b"), name("Z9")]),
        .daemonStatus,
    ]

    static let info = IPCStreamInfo(
        name: chat, role: .listener, state: .open, bytesWritten: 10, bytesDurable: 10, bytesAcked: 4,
        bytesReceived: 7, bytesConsumed: 2, readable: 5, writeBuffered: 6, writeClosed: false, peerClosed: true)
    static let failedInfo = IPCStreamInfo(
        name: name("x"), role: .multicastReader, state: .failed, bytesReceived: UInt64.max, reason: "transport failed",
        engine: "unacked=[] reads=[\"in3/wait\"] rto=0.2 seconds backoff=0")
    static let allRolesAndStates: [IPCStreamInfo] = IPCStreamRole.allCases.flatMap { role in
        IPCStreamState.allCases.map { IPCStreamInfo(name: name("s-\(role.rawValue)"), role: role, state: $0) }
    }
    static let daemon = IPCDaemonStatus(
        version: "0.1.0", instance: instance, kpclientdConnected: true, kpclientd: "unix:/run/kpclientd.sock",
        streams: 3, active: 2, damaged: 1, connections: 4)

    static let replies: [IPCReply] = [
        .hello(version: 1, daemon: "streamd 0.1.0", instance: instance, features: ["subscribe", "multicast"]),
        .hello(version: 1, daemon: "", instance: instance, features: []),
        .created(info, address: "streamd1qexampleaddress"),
        .ok,
        .list([]),
        .list([info, failedInfo] + allRolesAndStates),
        .status(failedInfo),
        .address("streamd1qreadonly"),
        .written(accepted: 0, offset: 5),
        .written(accepted: 262_144, offset: UInt64.max),
        .data(offset: 3, bytes: Array("hello".utf8), end: false),
        .data(offset: 9, bytes: [], end: true),
        .consumed(offset: 99),
        .daemonStatus(daemon),
    ]

    static let errors: [IPCError] = [
        IPCError(.wrongOffset, "expected another offset", expectedOffset: 5),
        IPCError(.busy, "write buffer full", retryAfterMilliseconds: 250),
        IPCError(.noSuchStream, "no stream named chat"),
        IPCError(Code(number: 999), "from the future"),
    ] + IPCError.Code.allKnown.map { IPCError($0, "message for \($0.name)") }

    typealias Code = IPCError.Code

    static let events: [IPCEvent] = [
        .dataAvailable(name: chat, offset: 17),
        .peerClosed(name: chat),
        .streamFailed(name: chat, error: IPCError(.streamFailed, "transport failed")),
        .streamFailed(name: chat, error: IPCError(.busy, "later", retryAfterMilliseconds: 1)),
        .writeAcknowledged(name: chat, offset: 1 << 33),
        .kpclientd(connected: false),
        .kpclientd(connected: true),
    ]

    static var serverMessages: [IPCServerMessage] {
        replies.enumerated().map { .reply(id: UInt64($0.offset), .success($0.element)) }
            + errors.map { .reply(id: UInt64.max, .failure($0)) }
            + events.map { .event($0) }
            + [.goodbye(IPCError(.malformed, "request is not a CBOR map")), .goodbye(IPCError(.shuttingDown, "bye"))]
    }
}
