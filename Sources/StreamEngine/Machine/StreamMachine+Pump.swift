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

    /// Sends frames that waited for room in the budget, lowest index (oldest) first.
    mutating func sendBudgetWaiting(now: StreamTime) {
        while operationsInFlight < writeBudget, let index = budgetWaiting.min() {
            budgetWaiting.remove(index)
            transmit(index, now: now, counting: sendRecords[index] == nil ? \.firstSends : \.timeoutResends)
        }
    }

    /// When the oldest operation in flight reaches ``StreamConfiguration/operationTimeout``.
    var operationDeadline: StreamTime? {
        var oldest: StreamTime?
        for operation in writeOperations.values where oldest.map({ operation.started < $0 }) ?? true { oldest = operation.started }
        for operation in readOperations.values where oldest.map({ operation.started < $0 }) ?? true { oldest = operation.started }
        return oldest.map { $0 + configuration.operationTimeout }
    }

    /// Cancels operations in flight for ``StreamConfiguration/operationTimeout`` and issues them
    /// again (a write resends the same ciphertext; reads are re-planned), oldest first.
    mutating func expireOperations(now: StreamTime) {
        let timeout = configuration.operationTimeout
        for operation in writeOperations.filter({ now - $0.value.started >= timeout }).keys.sorted() {
            guard let index = writeOperations.removeValue(forKey: operation)?.index else { continue }
            actions.append(.cancel(operation))
            if sendRecords[index]?.inFlight == operation { sendRecords[index]?.inFlight = nil }
            transmit(index, now: now, counting: \.deadlineResends)
        }
        for operation in readOperations.filter({ now - $0.value.started >= timeout }).keys.sorted() {
            guard let record = readOperations.removeValue(forKey: operation) else { continue }
            actions.append(.cancel(operation))
            switch record.channel {
            case .inbound:
                if inboundReads[record.index] == operation { inboundReads[record.index] = nil }
            case .outbound:
                if verifyReads[record.index] == operation {
                    verifyReads[record.index] = startRead(channel: .outbound, index: record.index, mode: .poll, now: now)
                }
            }
        }
    }
}
