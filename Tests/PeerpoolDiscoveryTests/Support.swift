import Foundation
import PeerpoolTestSupport

struct ToolFailure: Error, CustomStringConvertible {
    let description: String
}

/// Runs a tool to its end (at most `timeout`; killed then) with empty standard input and returns
/// its standard output; throws, with its standard error, if it fails.
func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(30)) async throws -> String {
    var command = TestChild.Command.program(executable, arguments)
    command.standardInput = .null
    let output = try await TestChild.run(command, within: timeout)
    guard !output.timedOut else {
        throw ToolFailure(description: "\(executable) \(arguments.prefix(3)) did not finish within \(timeout)")
    }
    guard output.status == 0 else {
        throw ToolFailure(description: "\(executable) \(arguments.prefix(3)) exited \(output.termination.map { "\($0)" } ?? "nothing"): \(output.stderr.suffix(2000))")
    }
    return output.stdout
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
