import ArgumentParser
import Foundation
import IPC
import StreamClient

#if canImport(Glibc)
import Glibc
#endif

/// `streamctl`: the command line for streamd.
@main
struct Streamctl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "streamctl",
        abstract: "Control streamd: open, list, send, receive and close named streams.",
        discussion: """
            The socket is --socket, else $STREAMD_SOCKET, else $XDG_RUNTIME_DIR/streamd/streamd.sock \
            (streamd's default).

            Exit status:
              0   success
              1   streamd refused the request (the message names the reason and its code)
              64  bad usage
              69  streamd cannot be reached (not running, or another socket is meant)
              74  a local file could not be read or written, or the connection to streamd was lost
            Shell completions: streamctl --generate-completion-script bash|zsh|fish
            """,
        version: "streamctl 0.1.0",
        subcommands: [Open.self, List.self, Status.self, Address.self, Send.self, Recv.self, Close.self, Remove.self])
}

/// Options every command takes.
struct CommonOptions: ParsableArguments {
    @Option(help: "streamd's socket (default: $STREAMD_SOCKET, else $XDG_RUNTIME_DIR/streamd/streamd.sock).")
    var socket: String?

    @Flag(help: "Print JSON instead of text.")
    var json = false

    var socketPath: String { socket ?? StreamdClient.defaultSocketPath(environment: ProcessInfo.processInfo.environment) }

    /// Connects, turning failures into the documented exit codes.
    func connect() async throws -> StreamdClient {
        do {
            return try await StreamdClient.connect(socketPath: socketPath, clientName: "streamctl")
        } catch {
            throw Failure.from(error)
        }
    }
}

/// Runs `body`; an error is printed on stderr and becomes its documented exit code.
func reporting<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as ExitCode {
        throw error
    } catch {
        let failure = Failure.from(error)
        printError("streamctl: \(failure.description)")
        throw ExitCode(failure.exitCode)
    }
}

/// An error printed on stderr with its exit code.
struct Failure: Error, CustomStringConvertible {
    var description: String
    var exitCode: Int32

    static func from(_ error: any Error) -> Failure {
        switch error {
        case let error as Failure: return error
        case let error as IPCError: return Failure(description: "streamd: \(error.message) (\(error.code.name), code \(error.code.number))", exitCode: 1)
        case let error as StreamClientError:
            return Failure(description: error.message, exitCode: error.code == .notRunning ? 69 : 74)
        default: return Failure(description: "\(error)", exitCode: 74)
        }
    }
}

/// Writes a line to standard error.
func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

