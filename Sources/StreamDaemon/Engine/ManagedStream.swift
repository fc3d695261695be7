import IPC
import PigeonholeTransport
import StreamEngine
import StreamStore

/// One stream the daemon runs: its machine, its channels and who waits on it.
///
/// Owned by ``StreamHost`` and touched only inside it.
final class ManagedStream {
    /// The stream's row in the database.
    let id: StoredStreamID
    /// The app-chosen name.
    let name: StreamName
    /// Role and address.
    let metadata: StreamMetadata
    /// The sans-I/O protocol state.
    var machine: StreamMachine
    /// Why the host stopped the stream (for example a box size kpclientd no longer uses).
    var hostFailure: StreamError?
    /// Why the stream cannot go on, if it cannot.
    var failure: StreamError? { hostFailure ?? inspect { $0.failure } }
    /// App requests waiting for this stream's state to change.
    var waiters: [CheckedContinuation<Void, Never>] = []
    /// Accepted writes answered without a task of their own, in sequence order: each reply
    /// runs once the durable sequence reaches its sequence, or with the error that ends the wait
    /// (``StreamHost/startWrite(name:offset:data:reply:)``).
    var durableReplies: [(sequence: UInt64, reply: @Sendable (Result<Void, IPCError>) -> Void)] = []
    /// The box channels, opened on first use.
    var channels: [StreamChannel: Task<PigeonholeBoxChannel, any Error>] = [:]
    /// The channels whose opening succeeded: operations on them start without a task.
    var opened: [StreamChannel: PigeonholeBoxChannel] = [:]
    /// The channels' index caches: restored from the store, refreshed after each compaction,
    /// and stored with the next one.
    var indexSnapshots = IndexSnapshots()
    /// Operations running now, with the lane they count against.
    var running: [OperationID: (operation: BoxOperation, lane: OperationScheduler<StoredStreamID>.Lane)] = [:]
    /// Journal rows stored since the last checkpoint; compaction resets it.
    var rowsSinceCheckpoint: Int
    /// Journal bytes stored since the last checkpoint.
    var bytesSinceCheckpoint: Int = 0
    /// What the last event told subscribers, so each change is announced once.
    var announcedDelivered: UInt64 = 0
    var announcedPeerClosed = false
    var announcedFailure = false
    var announcedAcked: UInt64 = 0
    /// Whether the peer's close was logged.
    var loggedPeerClosed = false

    init(id: StoredStreamID, name: StreamName, metadata: StreamMetadata, machine: StreamMachine, rowsSinceCheckpoint: Int) {
        self.id = id
        self.name = name
        self.metadata = metadata
        self.machine = machine
        self.rowsSinceCheckpoint = rowsSinceCheckpoint
        announcedDelivered = machine.checkpoint.deliveredBytes
        announcedPeerClosed = machine.checkpoint.peerFinOffset != nil
        loggedPeerClosed = announcedPeerClosed
        announcedFailure = machine.failure != nil
    }

    /// Reads the machine in place.
    ///
    /// Calling one of the engine's getters on ``machine`` directly copies the whole machine
    /// first (the getter is opaque, so the class property's read cannot be shared with it);
    /// through an `inout` access it is read where it lies. `body` must not change the machine.
    func inspect<T>(_ body: (inout StreamMachine) -> T) -> T {
        body(&machine)
    }

    /// Wakes every waiter; each re-checks its condition.
    func wake() {
        guard !waiters.isEmpty else { return }
        let current = waiters
        waiters.removeAll()
        for waiter in current { waiter.resume() }
    }

    /// The role as apps see it.
    var ipcRole: IPCStreamRole {
        switch (metadata.address.mode, metadata.role) {
        case (.endToEnd, .listener): return .listener
        case (.endToEnd, .dialer): return .dialer
        case (.multicast, .listener): return .multicastWriter
        case (.multicast, .dialer): return .multicastReader
        }
    }
}

extension IPCStreamInfo {
    /// The description of a quarantined stream: only its name and why it cannot run.
    static func damaged(name: StreamName, reason: String) -> IPCStreamInfo {
        IPCStreamInfo(name: name, role: .listener, state: .damaged, reason: reason)
    }
}
