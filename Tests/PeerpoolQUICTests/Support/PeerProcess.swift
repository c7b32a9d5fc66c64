import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolTestSupport

/// A `peerpool-bench peer` child process: a real peer in another process that tests can kill.
final class PeerProcess: @unchecked Sendable {
    let child: PeerpoolChild
    let id52: ID52
    let address: SocketAddress

    var process: Process { child.process }

    /// Starts the peer and waits (at most `timeout`) for its `READY <id52> <host> <port>` line.
    init(timeout: Duration = .seconds(20)) async throws {
        let stdout = Pipe()
        child = try PeerpoolChild(
            ["peer", "--address", "127.0.0.1:0"], executable: peerpoolBenchExecutable, standardOutput: stdout, standardError: FileHandle.standardError)

        let line = await firstLines(of: stdout.fileHandleForReading, count: 1, within: timeout)?.first
        let fields = line?.split(separator: " ") ?? []
        guard fields.count == 4, fields[0] == "READY", let id = ID52(String(fields[1])), let port = Int(fields[3]) else {
            child.process.terminate()
            throw PeerProcessError(message: "peer process did not report READY within \(timeout): \(line ?? "nothing")")
        }
        id52 = id
        address = try SocketAddress(ipAddress: String(fields[2]), port: port)
    }

    /// SIGKILL: the peer vanishes without a word, as a crashed process does.
    func kill() {
        child.kill()
    }
}

struct PeerProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
