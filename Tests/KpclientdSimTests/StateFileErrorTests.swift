import Foundation
import KpclientdSim
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `--state` paths that cannot work are refused at start with the path and the cause in words.
@Suite(.timeLimit(.minutes(2)))
struct StateFileErrorTests {
    static func startError(statePath: String) async -> SimStateError? {
        var configuration = TestSupport.configuration()
        configuration.statePath = statePath
        do {
            let sim = try await KpclientdSimulator.start(configuration)
            await sim.shutdown()
            return nil
        } catch let error as SimStateError {
            return error
        } catch {
            Issue.record("unexpected error \(error)")
            return nil
        }
    }

    @Test func aPathInAMissingDirectoryIsRefused() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("missing/state.cbor").path
        let error = try #require(await Self.startError(statePath: path))
        #expect(error.code == .io)
        #expect(error.message.contains(path))
        #expect(error.message.contains("No such file or directory"))
    }

    @Test func aFIFODoesNotBlockTheStart() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("state.fifo").path
        #expect(mkfifo(path, 0o600) == 0)
        let error = try #require(await Self.startError(statePath: path))
        #expect(error.message.contains(path))
        #expect(error.message.contains("FIFO"))
    }

    @Test func aDirectoryIsNamedAsSuch() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("state").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = try #require(await Self.startError(statePath: path))
        #expect(error.message.contains(path))
        #expect(error.message.contains("is a directory"))
        #expect(!error.message.contains("short read"))
    }

    @Test(.enabled(if: getuid() != 0, "root reads any file"))
    func anUnreadableFileGivesTheCauseInWords() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("state").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data([0xa0]), attributes: [.posixPermissions: 0])) 
        let error = try #require(await Self.startError(statePath: path))
        #expect(error.message.contains(path))
        #expect(error.message.contains("Permission denied"))
    }

    @Test func savedStateFileIsOwnerOnly() async throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("state").path
        var configuration = TestSupport.configuration()
        configuration.statePath = path
        try await TestSupport.withSimulator(configuration) { sim in
            let client = try RawClient(sim.listenAddress)
            try await client.handshake()
            let stream = try await Stream(client)
            #expect(try await stream.write(client, stream.first, [1, 2, 3]) == 0)
        }
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
    }

    @Test func theProcessRefusesToStartWithTheStateInAMissingDirectory() async throws {
        let path = "/nonexistent-\(UUID().uuidString)/state"
        let result = try await ProductProcess.run("kpclientd-sim", ["--listen", "tcp:127.0.0.1:0", "--state", path], timeout: .seconds(20))
        #expect(result.status != nil && result.status != 0)
        #expect(result.stderr.contains(path))
        #expect(!result.stdout.contains("listening on"))
    }
}
