import CBOR

/// What a stream is to this daemon.
public enum IPCStreamRole: String, Sendable, Hashable, CaseIterable {
    /// Created with `create(mode: .stream)`; waits for a dialer.
    case listener
    /// Joined with a full address of a listener.
    case dialer
    /// Created with `create(mode: .multicast)`; writes only.
    case multicastWriter = "multicast_writer"
    /// Joined with a read-only address; reads only.
    case multicastReader = "multicast_reader"
}

/// A stream's life-cycle state.
public enum IPCStreamState: String, Sendable, Hashable, CaseIterable {
    /// Running; data may flow both ways the role allows.
    case open
    /// The app closed its direction; the end is not yet acknowledged or the peer's direction is open.
    case closing
    /// Both directions ended.
    case closed
    /// Failed permanently; ``IPCStreamInfo/reason`` says why.
    case failed
    /// The stored state is damaged; ``IPCStreamInfo/reason`` says how.
    case damaged
}

/// A description of one stream, free of secrets (no address, no keys).
///
/// Offsets are stream byte counts in the app's own direction (`bytesWritten`, `bytesDurable`,
/// `bytesAcked`, `writeBuffered`) and in the peer's (`bytesReceived`, `bytesConsumed`, `readable`).
public struct IPCStreamInfo: Sendable, Hashable {
    /// The stream's name.
    public var name: StreamName
    /// What the stream is to this daemon.
    public var role: IPCStreamRole
    /// The life-cycle state.
    public var state: IPCStreamState
    /// Bytes the daemon accepted from the app (the offset the next write starts at).
    public var bytesWritten: UInt64
    /// Bytes of the written ones that are durable on disk, if the daemon tracks it separately.
    public var bytesDurable: UInt64?
    /// Bytes the peer acknowledged.
    public var bytesAcked: UInt64
    /// Bytes received from the peer in order (available to `read` up to here).
    public var bytesReceived: UInt64
    /// Bytes the app consumed (received bytes before this offset are forgotten).
    public var bytesConsumed: UInt64
    /// Bytes received but not consumed (`bytesReceived - bytesConsumed`).
    public var readable: UInt64
    /// Bytes accepted from the app but not yet acknowledged by the peer.
    public var writeBuffered: UInt64
    /// Whether the app closed its direction.
    public var writeClosed: Bool
    /// Whether the peer closed its direction.
    public var peerClosed: Bool
    /// Why the stream failed or is damaged; `nil` otherwise.
    public var reason: String?
    /// The stream engine's state for humans debugging a stream (unacknowledged frames and how
    /// often each was sent, outstanding reads, timers, the retransmission timeout): secret-free,
    /// in no stable format. Only `status` sets it, not `list`.
    public var engine: String?

    /// Creates a stream description.
    public init(
        name: StreamName, role: IPCStreamRole, state: IPCStreamState,
        bytesWritten: UInt64 = 0, bytesDurable: UInt64? = nil, bytesAcked: UInt64 = 0,
        bytesReceived: UInt64 = 0, bytesConsumed: UInt64 = 0, readable: UInt64 = 0, writeBuffered: UInt64 = 0,
        writeClosed: Bool = false, peerClosed: Bool = false, reason: String? = nil, engine: String? = nil
    ) {
        self.name = name
        self.role = role
        self.state = state
        self.bytesWritten = bytesWritten
        self.bytesDurable = bytesDurable
        self.bytesAcked = bytesAcked
        self.bytesReceived = bytesReceived
        self.bytesConsumed = bytesConsumed
        self.readable = readable
        self.writeBuffered = writeBuffered
        self.writeClosed = writeClosed
        self.peerClosed = peerClosed
        self.reason = reason
        self.engine = engine
    }

    /// The wire form: a map (docs/IPC.md, "Stream description"). `reason` is truncated to
    /// ``IPCLimits/maxTextLength``, `engine` to ``IPCLimits/maxEngineTextLength``.
    public var cborValue: CBORValue {
        var pairs: [(String, CBORValue)] = [
            (IPCKey.name, .text(name.rawValue)), (IPCKey.role, .text(role.rawValue)), (IPCKey.state, .text(state.rawValue)),
            (IPCKey.bytesWritten, .unsigned(bytesWritten)),
        ]
        if let bytesDurable { pairs.append((IPCKey.bytesDurable, .unsigned(bytesDurable))) }
        pairs += [
            (IPCKey.bytesAcked, .unsigned(bytesAcked)), (IPCKey.bytesReceived, .unsigned(bytesReceived)),
            (IPCKey.bytesConsumed, .unsigned(bytesConsumed)), (IPCKey.readable, .unsigned(readable)),
            (IPCKey.writeBuffered, .unsigned(writeBuffered)), (IPCKey.writeClosed, .bool(writeClosed)),
            (IPCKey.peerClosed, .bool(peerClosed)),
        ]
        if let reason { pairs.append((IPCKey.reason, .text(truncated(reason)))) }
        if let engine { pairs.append((IPCKey.engine, .text(truncated(engine, to: IPCLimits.maxEngineTextLength)))) }
        return .textMap(pairs)
    }

    init(fields: IPCFields) throws(IPCError) {
        self.init(
            name: try fields.name(), role: try fields.enumeration(IPCKey.role, IPCStreamRole.self),
            state: try fields.enumeration(IPCKey.state, IPCStreamState.self),
            bytesWritten: try fields.uint(IPCKey.bytesWritten), bytesDurable: try fields.optionalUInt(IPCKey.bytesDurable),
            bytesAcked: try fields.uint(IPCKey.bytesAcked), bytesReceived: try fields.uint(IPCKey.bytesReceived),
            bytesConsumed: try fields.uint(IPCKey.bytesConsumed), readable: try fields.uint(IPCKey.readable),
            writeBuffered: try fields.uint(IPCKey.writeBuffered), writeClosed: try fields.bool(IPCKey.writeClosed),
            peerClosed: try fields.bool(IPCKey.peerClosed), reason: try fields.optionalText(IPCKey.reason, max: IPCLimits.maxTextLength),
            engine: try fields.optionalText(IPCKey.engine, max: IPCLimits.maxEngineTextLength))
    }
}

/// A description of the daemon, free of secrets.
public struct IPCDaemonStatus: Sendable, Hashable {
    /// The daemon's software version, such as `0.1.0`.
    public var version: String
    /// The daemon's per-run identifier (16 random bytes, new at every start).
    public var instance: [UInt8]
    /// Whether the daemon is connected to kpclientd.
    public var kpclientdConnected: Bool
    /// How the daemon reaches kpclientd, for humans (such as `unix:/run/kpclientd.sock`); no secrets.
    public var kpclientd: String
    /// The number of streams.
    public var streams: UInt64
    /// The number of streams that are open or closing.
    public var active: UInt64
    /// The number of damaged streams.
    public var damaged: UInt64
    /// The number of app connections.
    public var connections: UInt64

    /// Creates a daemon description.
    public init(
        version: String, instance: [UInt8], kpclientdConnected: Bool, kpclientd: String,
        streams: UInt64, active: UInt64, damaged: UInt64, connections: UInt64
    ) {
        self.version = version
        self.instance = instance
        self.kpclientdConnected = kpclientdConnected
        self.kpclientd = kpclientd
        self.streams = streams
        self.active = active
        self.damaged = damaged
        self.connections = connections
    }

    /// The wire form: a map (docs/IPC.md, `daemon_status`). Text is truncated to ``IPCLimits/maxTextLength``.
    public var cborValue: CBORValue {
        .textMap([
            (IPCKey.version, .text(truncated(version))), (IPCKey.instance, .bytes(instance)),
            (IPCKey.kpclientdConnected, .bool(kpclientdConnected)), (IPCKey.kpclientd, .text(truncated(kpclientd))),
            (IPCKey.streams, .unsigned(streams)), (IPCKey.active, .unsigned(active)),
            (IPCKey.damaged, .unsigned(damaged)), (IPCKey.connections, .unsigned(connections)),
        ])
    }

    init(fields: IPCFields) throws(IPCError) {
        self.init(
            version: try fields.text(IPCKey.version, max: IPCLimits.maxTextLength),
            instance: try fields.bytes(IPCKey.instance, exactly: IPCLimits.instanceLength),
            kpclientdConnected: try fields.bool(IPCKey.kpclientdConnected),
            kpclientd: try fields.text(IPCKey.kpclientd, max: IPCLimits.maxTextLength),
            streams: try fields.uint(IPCKey.streams), active: try fields.uint(IPCKey.active),
            damaged: try fields.uint(IPCKey.damaged), connections: try fields.uint(IPCKey.connections))
    }
}
