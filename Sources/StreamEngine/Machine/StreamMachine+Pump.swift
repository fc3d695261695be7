// The pump: what every input ends with, the operation budget and operation deadlines.

extension StreamMachine {
    // MARK: - Internals: the pump

    /// Does everything the current state allows: creates frames, releases durable sends,
    /// sends acknowledgements and keeps the read window full.
    mutating func advance(now: StreamTime) {
        guard failure == nil, !isHalted else { return }
        createFrames(now: now)
        sendBudgetWaiting(now: now)
        releaseGatedWrites(now: now)
        scheduleReads(now: now)
        sendBudgetWaiting(now: now)  // Into the room reads made.
    }

    /// Operations in flight, against ``StreamConfiguration/maxOperationsInFlight``.
    var operationsInFlight: Int { writeOperations.count + readOperations.count }

    /// Writes leave one slot of the budget to reads, so that the stream always reads on.
    var writeBudget: Int {
        configuration.maxOperationsInFlight - (checkpoint.inbound != nil ? 1 : 0)
    }

    /// Whether a write may start now: writes stay within ``writeBudget`` and all operations
    /// within the budget. Reads leave a slot free for the next write (see `scheduleReads`), so
    /// a write never waits for a read to complete.
    var canStartWrite: Bool {
        writeOperations.count < writeBudget && operationsInFlight < configuration.maxOperationsInFlight
    }

    /// How many reads may be in flight: the room writes (in flight or waiting) do not want,
    /// but always one. With `forStarting`, less one slot kept free for the next write (an
    /// acknowledgement, or a frame the app is about to write), so that starting it needs no
    /// read cancelled; reads already in flight are cancelled only beyond the limit without it.
    func readLimit(forStarting: Bool) -> Int {
        let budget = configuration.maxOperationsInFlight
        let writes = min(writeOperations.count + budgetWaiting.count, writeBudget)
        let reserve = forStarting && checkpoint.outbound != nil && writes < writeBudget ? 1 : 0
        return max(1, budget - writeBudget, budget - writes - reserve)
    }

    /// Sends frames that waited for room in the budget, lowest index (oldest) first.
    mutating func sendBudgetWaiting(now: StreamTime) {
        while canStartWrite, let (index, reason) = budgetWaiting.min(by: { $0.key < $1.key }) {
            budgetWaiting[index] = nil
            transmit(index, now: now, for: sendRecords[index] == nil ? .first : reason)
        }
    }

    /// When the oldest operation in flight reaches ``StreamConfiguration/operationTimeout``.
    var operationDeadline: StreamTime? {
        var oldest = writeOperations.earliestStart
        if let reads = readOperations.earliestStart, oldest.map({ reads < $0 }) ?? true { oldest = reads }
        return oldest.map { $0 + configuration.operationTimeout }
    }

    /// Cancels operations in flight for ``StreamConfiguration/operationTimeout`` and issues them
    /// again (a write resends the same ciphertext; reads are re-planned), oldest first.
    mutating func expireOperations(now: StreamTime) {
        let timeout = configuration.operationTimeout
        for operation in writeOperations.entries.filter({ now - $0.value.started >= timeout }).map(\.key).sorted() {
            guard let index = writeOperations.removeValue(forKey: operation)?.index else { continue }
            actions.append(.cancel(operation))
            if !confirmationCopies.isEmpty, let copy = confirmationCopies[index]?.inFlight.firstIndex(of: operation) {
                confirmationCopies.update(at: index) { $0.inFlight.remove(at: copy) }
                continue
            }
            sendRecords.update(at: index) { if $0.inFlight == operation { $0.inFlight = nil } }
            transmit(index, now: now, for: .deadline)
        }
        for operation in readOperations.entries.filter({ now - $0.value.started >= timeout }).map(\.key).sorted() {
            guard let record = readOperations.removeValue(forKey: operation) else { continue }
            actions.append(.cancel(operation))
            switch record.channel {
            case .inbound:
                if inboundReads[record.index] == operation { inboundReads[record.index] = nil }
                if aheadProbe == operation { aheadProbe = nil }
                if !eagerReads.isEmpty { eagerReads.removeAll { $0 == operation } }
            case .outbound:
                if verifyReads[record.index] == operation {
                    verifyReads[record.index] = startRead(channel: .outbound, index: record.index, mode: .poll, now: now)
                }
            }
        }
    }
}
