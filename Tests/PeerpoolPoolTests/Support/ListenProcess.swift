import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolTestSupport

/// A `peerpool listen` child process: a real peer that tests can kill.
final class ListenProcess: @unchecked Sendable {
    let child: PeerpoolChild
    let identities: [ID52]
    let address: SocketAddress

    var process: Process { child.process }

    /// Starts `peerpool listen --identities n` and waits (bounded) for its ID52s.
    init(identities count: Int = 1) async throws {
        let stdout = Pipe()
        child = try PeerpoolChild(
            ["listen", "--address", "127.0.0.1:0", "--identities", "\(count)", "--exit-on-stdin-eof"], standardOutput: stdout)
        let lines = await firstLines(of: stdout.fileHandleForReading, count: count + 1, within: .seconds(20)) ?? []
        let fields = lines.first?.split(separator: " ") ?? []
        guard fields.count == 4, fields[0] == "LISTENING", let port = Int(fields[2]), lines.count == count + 1 else {
            child.process.terminate()
            throw PoolError(.connectFailed, "peerpool listen did not start: \(lines.prefix(2))")
        }
        address = try SocketAddress(ipAddress: String(fields[1]), port: port)
        identities = try lines.dropFirst().map { try ID52(parsing: $0) }
    }

    func peer(_ index: Int = 0) -> PeerAddress { PeerAddress(identities[index], at: address) }

    func kill() {
        child.kill()
    }
}
