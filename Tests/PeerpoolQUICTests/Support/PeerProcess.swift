import NIOCore
import PeerpoolIdentity
import PeerpoolTestSupport

/// A `peerpool-bench peer` child process: a real peer in another process that tests can kill.
/// Killed when released.
final class PeerProcess: Sendable {
    let child: TestChild
    let id52: ID52
    let address: SocketAddress

    /// Starts the peer and waits (at most `timeout`) for its `READY <id52> <host> <port>` line.
    init(timeout: Duration = .seconds(20)) async throws {
        let child = try TestChild(
            TestChild.Command("peerpool-bench peer", executable: peerpoolBenchExecutable, arguments: ["peer", "--address", "127.0.0.1:0"]))
        do {
            let line = try await child.nextLine(within: timeout, "READY")
            let fields = line.split(separator: " ")
            guard fields.count == 4, fields[0] == "READY", let id = ID52(String(fields[1])), let port = Int(fields[3]) else {
                throw TestChildError(.unexpectedOutput, child: child.name, "reported \(line.debugDescription)", transcript: child.transcript)
            }
            id52 = id
            address = try SocketAddress(ipAddress: String(fields[2]), port: port)
            self.child = child
        } catch {
            await child.kill()
            throw error
        }
    }

    /// SIGKILL: the peer vanishes without a word, as a crashed process does.
    func kill() async {
        await child.kill()
    }
}

/// A test's own failure in the QUIC tests' fixtures (no connection arrived, and the like).
struct PeerProcessError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
