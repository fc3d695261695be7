@testable import StreamEngine
import StreamEngineTesting

func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }

func unhex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var iterator = text.utf8.makeIterator()
    while let high = iterator.next(), let low = iterator.next() {
        out.append(UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)!)
    }
    return out
}

/// The secret 0x00...0x1f used by the published test vectors.
let vectorSecret = (0..<32).map { UInt8($0) }

/// A configuration with short timers for tests on a real clock.
func fastConfiguration() -> StreamConfiguration {
    var configuration = StreamConfiguration()
    configuration.initialRetransmitTimeout = .milliseconds(300)
    configuration.minRetransmitTimeout = .milliseconds(50)
    configuration.maxRetransmitTimeout = .seconds(2)
    configuration.ackDelay = .milliseconds(5)
    configuration.maxReadRetryInterval = .milliseconds(200)
    return configuration
}

extension StreamMachine {
    /// Takes actions, failing on anything but the listed kinds.
    mutating func takeWrites() -> [(OperationID, UInt64, [UInt8])] {
        takeActions().compactMap { action in
            if case .write(let operation, let index, let bytes) = action { return (operation, index, bytes) }
            return nil
        }
    }
}
