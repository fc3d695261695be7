import Foundation
import Testing

/// Runs the Python client's unit tests (`clients/python/test_streamd_client.py`): its frames must
/// equal docs/IPC.md's examples byte for byte. Requires `.venv/` (run `scripts/python-venv`).
@Suite struct PythonClientTests {
    @Test func pythonClientMatchesTheDocument() throws {
        let root = DocExamplesTests.repositoryRoot
        let python = root.appendingPathComponent(".venv/bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            Issue.record("the Python client test needs \(python.path): run scripts/python-venv from the repository root first")
            return
        }
        let process = Process()
        process.executableURL = python
        process.arguments = [root.appendingPathComponent("clients/python/test_streamd_client.py").path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "test_streamd_client.py failed:\n\(text.suffix(8000))")
        #expect(text.contains("OK"))
    }
}
