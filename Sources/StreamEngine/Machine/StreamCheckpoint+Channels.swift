extension StreamCheckpoint {
    /// The credential that opens the box channel this end writes, if it writes.
    ///
    /// - Important: it is key material; pass it only to the box store.
    public var outboundChannelCredential: BoxChannelCredential? {
        outbound.map { .writerSeed($0.boxSeed) }
    }

    /// The credential that opens the box channel this end reads, if it reads.
    ///
    /// - Important: it is key material; pass it only to the box store.
    public var inboundChannelCredential: BoxChannelCredential? { inbound?.channel }
}

extension StreamCheckpoint {
    /// App bytes in frames the peer has not acknowledged yet (or, in multicast, not verified).
    public var unackedDataBytes: Int {
        unacked.values.reduce(0) { $0 + $1.dataLength }
    }
}
