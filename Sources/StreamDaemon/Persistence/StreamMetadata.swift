import CBOR
import StreamEngine

/// What the daemon keeps about a stream besides its engine checkpoint: its role and address.
///
/// Stored as a small CBOR map in the database's `metadata` column.
///
/// - Important: ``address`` is the stream's secret capability. It lives only in the database
///   (0600 in a 0700 directory) and in ``StreamHost`` memory, never in a log.
struct StreamMetadata: Sendable, Hashable {
    static let formatVersion: UInt64 = 1

    /// Which end this daemon holds.
    var role: StreamRole
    /// The address the stream was created or joined with.
    var address: StreamAddress
    /// When the stream was created, in milliseconds since the Unix epoch.
    var createdMilliseconds: UInt64

    func encoded() -> [UInt8] {
        CBORValue.textMap([
            ("v", .unsigned(Self.formatVersion)),
            ("role", .unsigned(UInt64(role.rawValue))),
            ("address", .text(address.encoded)),
            ("created_ms", .unsigned(createdMilliseconds)),
        ]).encoded()
    }

    init(role: StreamRole, address: StreamAddress, createdMilliseconds: UInt64) {
        self.role = role
        self.address = address
        self.createdMilliseconds = createdMilliseconds
    }

    /// Decodes stored metadata; the error never quotes the address.
    init(encoded bytes: [UInt8]) throws(StreamError) {
        func bad(_ why: String) -> StreamError { StreamError(.invalidCheckpoint, "stream metadata: \(why)") }
        let value: CBORValue
        do {
            value = try CBORDecoder.decode(bytes, limits: .init(maxDepth: 4, maxItems: 64))
        } catch {
            throw bad("not valid CBOR")
        }
        guard value["v"]?.uint64 == Self.formatVersion else { throw bad("unknown format version") }
        guard let rawRole = value["role"]?.uint64, let role = StreamRole(rawValue: UInt8(truncatingIfNeeded: rawRole)), rawRole < 256 else {
            throw bad("bad role")
        }
        guard let text = value["address"]?.text else { throw bad("missing address") }
        do {
            address = try StreamAddress(parsing: text)
        } catch {
            throw bad("the stored address does not parse")
        }
        self.role = role
        createdMilliseconds = value["created_ms"]?.uint64 ?? 0
    }
}
