// Types that hold key material print, debug-print and reflect without it, so that a log line,
// an assertion message or `dump` never shows a secret.

extension StreamAddress: CustomDebugStringConvertible, CustomReflectable {
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["kind": "\(mode)", "secret": "redacted"]) }
}

extension OutboundKeys: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "OutboundKeys(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["keys": "redacted"]) }
}

extension InboundKeys: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "InboundKeys(redacted)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["keys": "redacted"]) }
}

extension BoxChannelCredential: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        switch self {
        case .writerSeed: return "BoxChannelCredential.writerSeed(redacted)"
        case .readLocator: return "BoxChannelCredential.readLocator(redacted)"
        }
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["credential": "redacted"]) }
}

extension StreamCheckpoint: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "StreamCheckpoint(\(mode), \(role), box \(boxSize) B, sequence \(sequence), next write \(nextWriteIndex), "
            + "unacked \(unackedCount), next read \(nextReadIndex), keys redacted)"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["summary": description]) }
}

extension StreamMachine: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String { "StreamMachine(\(status), \(diagnostics))" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["summary": description]) }
}

extension FrameSealer: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    var description: String { "FrameSealer(box \(boxSize) B, keys redacted)" }
    var debugDescription: String { description }
    var customMirror: Mirror { Mirror(self, children: ["keys": "redacted"]) }
}

extension StreamAddress.Kind: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        switch self {
        case .endToEnd: return "endToEnd(redacted)"
        case .multicastWriter: return "multicastWriter(redacted)"
        case .multicastReader: return "multicastReader(redacted)"
        }
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["kind": description]) }
}
