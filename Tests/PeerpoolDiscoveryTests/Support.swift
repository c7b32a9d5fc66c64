import Foundation
import PeerpoolTestSupport

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a tool to its end (at most `timeout`) and returns its standard output. Output goes to a
/// file, not a pipe, so a chatty tool cannot block on a full pipe while we wait for its exit.
func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(30)) async throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-disc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outputURL = directory.appendingPathComponent("out"), errorURL = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outputURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errorURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.standardOutput = try FileHandle(forWritingTo: outputURL)
    process.standardError = try FileHandle(forWritingTo: errorURL)
    let (ended, continuation) = AsyncStream<Int32>.makeStream()
    process.terminationHandler = { continuation.yield($0.terminationStatus); continuation.finish() }
    try process.run()
    let status = await withTaskGroup(of: Int32?.self) { group in
        group.addTask { for await status in ended { return status }; return nil }
        group.addTask { try? await Task.sleep(for: timeout); return nil }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    guard let status else {
        process.terminate()
        throw ToolFailure(description: "\(executable) \(arguments.prefix(3)) did not finish within \(timeout)")
    }
    let output = String(decoding: try Data(contentsOf: outputURL), as: UTF8.self)
    guard status == 0 else {
        let error = String(decoding: try Data(contentsOf: errorURL), as: UTF8.self)
        throw ToolFailure(description: "\(executable) \(arguments.prefix(3)) exited \(status): \(error.suffix(2000))")
    }
    return output
}

/// `Tests/PeerpoolDiscoveryTests/Interop/vectors.py` in the test venv.
func vectors(_ arguments: String...) async throws -> String {
    try await vectors(arguments)
}

func vectors(_ arguments: [String]) async throws -> String {
    let script = PythonInterop.repositoryRoot.appendingPathComponent("Tests/PeerpoolDiscoveryTests/Interop/vectors.py").path
    return try await run(PythonInterop.interpreter.path, [script] + arguments)
        .trimmingCharacters(in: .whitespacesAndNewlines)
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}

func bytes(hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex, let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex) {
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}
