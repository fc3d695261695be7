import Logging
import ThinWire

/// One envelope in a courier's dedup cache (`CourierBookKeeping`).
struct CourierCacheEntry {
    /// When the courier first saw the envelope; the entry is dropped `dedupCacheTTL` later.
    let createdAt: ContinuousClock.Instant
    /// The replica's answer, once one has arrived: a replica error code and, for reads, the plaintext.
    var result: CourierResult?
    /// Re-dispatches made at client polls (at most `maxRedispatchAttempts`).
    var redispatches = 0
}

/// A replica's answer as a courier caches it.
struct CourierResult {
    var code: UInt8
    var plaintext: [UInt8]?
}

/// What a courier sends back for one packet.
enum CourierAnswer {
    /// Received, no replica answer to give yet (`ReplyTypeACK`).
    case ack
    /// The cached replica answer (`ReplyTypePayload`).
    case payload(CourierResult)
}

/// Couriers: which exist, churn, and each one's dedup cache (`courier/server/plugin.go`).
extension SimCore {
    /// The `courier_identity_hash` of courier `serial` (the first courier when `nil` or unknown).
    func courierIdentityHash(_ serial: Int?) -> [UInt8] {
        if let serial {
            if let courier = couriers.first(where: { $0.serial == serial }) { return courier.identityHash }
            if let hash = departedCourierHashes[serial] { return hash }
        }
        return pki.serviceIdentityHash
    }

    /// The serial of the courier (present or departed) with `identityHash`, if any.
    func courierSerial(identityHash: [UInt8]) -> Int? {
        if let courier = couriers.first(where: { $0.identityHash == identityHash }) { return courier.serial }
        return departedCourierHashes.first(where: { $0.value == identityHash })?.key
    }

    /// A random courier of the current PKI document (`GetRandomCourier`).
    func pickCourier() -> Int {
        guard couriers.count > 1 else { return couriers.first?.serial ?? 0 }
        return couriers[Int(random.uint64() % UInt64(couriers.count))].serial
    }

    /// Removes a random courier from the network and adds a fresh one in its place, then pushes
    /// the new PKI document to every client. ARQs bound to the departed courier never complete.
    ///
    /// - Returns: the departed courier's serial.
    @discardableResult
    func departCourier() -> Int? {
        guard !couriers.isEmpty, !shuttingDown else { return nil }
        let index = Int(random.uint64() % UInt64(couriers.count))
        let gone = couriers.remove(at: index)
        departedCouriers.insert(gone.serial)
        departedCourierHashes[gone.serial] = gone.identityHash
        courierCaches[gone.serial] = nil
        model.courierDepartures += 1
        model.arqsStrandedByDepartures += sessions.values.reduce(0) { total, session in
            total + session.arq.values.filter { $0.courier == gone.serial }.count
                + session.copies.values.filter { $0.courier == gone.serial }.count
        }
        if departedCouriers.count > Self.maxRememberedDepartures { forgetUnusedDepartures() }
        couriers.append(SimCourier(serial: nextCourierSerial, identityKey: random.bytes(32)))
        nextCourierSerial += 1
        logger.info("a courier left the network", metadata: ["courier": "\(gone.serial)", "replacement": "\(nextCourierSerial - 1)"])
        let event = pkiDocumentEvent(epoch: currentEpoch)
        for connection in connections.values { send(event, to: connection) }
        return gone.serial
    }

    /// How many departed couriers are remembered before those no operation is bound to are forgotten.
    static let maxRememberedDepartures = 256

    /// Forgets departed couriers that no operation is bound to (keeps churn's memory bounded).
    private func forgetUnusedDepartures() {
        var bound: Set<Int> = []
        for session in sessions.values {
            for op in session.arq.values { bound.insert(op.courier) }
            for op in session.copies.values { bound.insert(op.courier) }
        }
        for serial in departedCouriers where !bound.contains(serial) {
            departedCouriers.remove(serial)
            departedCourierHashes[serial] = nil
        }
    }

    /// Makes couriers leave at Poisson times with the configured mean interval.
    func churnLoop() async {
        guard let interval = configuration.courierChurnInterval else { return }
        while !Task.isCancelled && !shuttingDown {
            let delay = random.exponential(mean: interval.seconds)
            do { try await Task.sleep(for: .nanoseconds(Int64(min(delay, 86_400 * 365) * 1e9))) } catch { return }
            departCourier()
        }
    }

    /// Courier `courier` handles one packet for envelope `hash` (`cacheHandleCourierEnvelope`).
    ///
    /// A new (or expired) envelope is dispatched to the replicas, whose answer lands in the
    /// cache, and is acknowledged. A known one is answered from the cache at once; if every
    /// answer so far is an error (or none came within `redispatchGrace`), the courier
    /// re-dispatches, at most `maxRedispatchAttempts` times, and the refreshed answer serves the
    /// *next* poll. `readBoxID` (reads only) lets stale answers be counted.
    func courierAnswer(courier: Int, hash: [UInt8], readBoxID: [UInt8]?, dispatch: () -> CourierResult?) -> CourierAnswer {
        let now = ContinuousClock.now
        var cache = courierCaches.removeValue(forKey: courier) ?? [:]  // no copy-on-write copy
        defer { courierCaches[courier] = cache }
        if let entry = cache[hash], now - entry.createdAt < configuration.dedupCacheTTL {
            var updated = entry
            let needsRedispatch: Bool
            if let result = entry.result {
                needsRedispatch = result.code != 0
            } else {
                needsRedispatch = now - entry.createdAt > configuration.redispatchGrace
            }
            if needsRedispatch && entry.redispatches < configuration.maxRedispatchAttempts {
                updated.redispatches += 1
                model.courierRedispatches += 1
                if let fresh = dispatch() { updated.result = fresh }
            }
            cache[hash] = updated
            guard let answer = entry.result else { return .ack }
            if answer.code == ReplicaErrorCode.boxIDNotFound.rawValue, let readBoxID, store.holds(boxID: readBoxID) {
                model.staleCacheAnswers += 1
            }
            return .payload(answer)
        }
        // Pruned on insertion, as the courier does: entries older than the TTL go.
        cache = cache.filter { now - $0.value.createdAt < configuration.dedupCacheTTL }
        cache[hash] = CourierCacheEntry(createdAt: now, result: dispatch())
        return .ack
    }
}
