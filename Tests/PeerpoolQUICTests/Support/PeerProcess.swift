import Foundation
import NIOCore
import PeerpoolIdentity

/// A `peerpool bench peer` child process: a real peer in another process that tests can kill.
final class PeerProcess: @unchecked Sendable {
    let process = Process()
    let id52: ID52
    let address: SocketAddress
    private let stdin = Pipe()

    /// The `peerpool` executable built next to the test bundle.
    static var executable: URL {
        let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [bundleDirectory.appendingPathComponent("peerpool"),
                          bundleDirectory.deletingLastPathComponent().appendingPathComponent("peerpool")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    /// Starts the peer and waits (at most `timeout`) for its `READY <id52> <host> <port>` line.
    init(timeout: Duration = .seconds(20)) async throws {
        let stdout = Pipe()
        process.executableURL = Self.executable
        process.arguments = ["bench", "peer", "--address", "127.0.0.1:0"]
        process.standardOutput = stdout
        process.standardInput = stdin
        process.standardError = FileHandle.standardError
        try process.run()

        let reader = stdout.fileHandleForReading
        let line: String? = try await withDeadline(timeout) {
            try await Task.detached {
                var bytes: [UInt8] = []
                while let byte = try reader.read(upToCount: 1)?.first, byte != UInt8(ascii: "\n") { bytes.append(byte) }
                return String(decoding: bytes, as: UTF8.self)
            }.value
        }
        let fields = line?.split(separator: " ") ?? []
        guard fields.count == 4, fields[0] == "READY", let id = ID52(String(fields[1])), let port = Int(fields[3]) else {
            process.terminate()
            throw PeerProcessError(message: "peer process did not report READY within \(timeout): \(line ?? "nothing")")
        }
        id52 = id
        address = try SocketAddress(ipAddress: String(fields[2]), port: port)
    }

    /// SIGKILL: the peer vanishes without a word, as a crashed process does.
    func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

struct PeerProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
