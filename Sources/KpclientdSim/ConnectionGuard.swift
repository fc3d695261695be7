import Synchronization

/// The simulator-wide budget of bytes buffered in incomplete inbound frames.
///
/// A frame may legally be 40 MiB, so one connection may buffer that much; the budget stops many
/// connections that each hold part of a large frame from exhausting memory together.
final class InboundBudget: Sendable {
    /// The most bytes all connections together may hold in incomplete frames.
    let limit: Int
    private let used = Atomic<Int>(0)

    init(limit: Int) { self.limit = limit }

    /// The bytes currently held.
    var bytesInUse: Int { used.load(ordering: .relaxed) }

    /// Adds `delta` (possibly negative) and reports whether the total is still within the limit.
    func adjust(by delta: Int) -> Bool {
        let total = used.wrappingAdd(delta, ordering: .relaxed).newValue
        return total <= limit
    }
}

/// What the read side of one connection has done, for its watchdog.
///
/// The watchdog closes a connection that sends no complete frame within the handshake timeout
/// (a client that never completes the handshake) or that leaves a frame incomplete for longer
/// than the frame timeout (a client that stalls mid-frame).
final class ReadProgress: Sendable {
    private struct State {
        var framesReceived = 0
        var partialSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// When the connection was accepted.
    let connectedAt: ContinuousClock.Instant

    init(connectedAt: ContinuousClock.Instant = .now) { self.connectedAt = connectedAt }

    /// Records a complete frame: the handshake is done and no frame is incomplete (while the
    /// frame is handled, which may wait for queue space, the connection is not being read and
    /// nothing is timed).
    func frameDecoded() {
        state.withLock { s in
            s.framesReceived += 1
            s.partialSince = nil
        }
    }

    /// Records, after the complete frames of a read are handled, whether bytes of an incomplete
    /// frame remain; the frame timeout runs from the first read that left that frame incomplete.
    func readFinished(holdsPartialFrame: Bool, now: ContinuousClock.Instant = .now) {
        state.withLock { s in
            if !holdsPartialFrame {
                s.partialSince = nil
            } else if s.partialSince == nil {
                s.partialSince = now
            }
        }
    }

    /// Why the connection must be closed now, or `nil` if it may stay.
    func violation(handshakeTimeout: Duration, frameTimeout: Duration, now: ContinuousClock.Instant = .now) -> String? {
        state.withLock { s in
            if let since = s.partialSince, now - since > frameTimeout {
                return "a frame stayed incomplete for longer than \(frameTimeout)"
            }
            if s.framesReceived == 0, now - connectedAt > handshakeTimeout {
                return "no complete frame within the handshake timeout of \(handshakeTimeout)"
            }
            return nil
        }
    }
}

/// A connection closed by its watchdog or by the inbound budget.
struct ConnectionGuardError: Error, CustomStringConvertible {
    var description: String
}
