import PeerpoolIdentity

/// `peerpool listen --address 127.0.0.1:0 --exit-on-stdin-eof <arguments>` once it announced
/// itself: its `LISTENING <host> <port> <n>` line and the n ID52s it serves. A real peer in
/// another process, which tests can stop (EOF on its standard input) or kill; killed when
/// released. Not for `--socket-per-identity`, which announces addresses instead of ID52s.
public final class ListenProcess: Sendable {
    public let child: TestChild
    public let host: String
    public let port: Int
    public let identities: [ID52]

    /// Starts the listener and waits at most `timeout` for its announcement.
    public init(_ arguments: [String] = [], within timeout: Duration = .seconds(40)) async throws {
        let child = try TestChild(.peerpool(["listen", "--address", "127.0.0.1:0", "--exit-on-stdin-eof"] + arguments))
        do {
            let deadline = ContinuousClock.now + timeout
            let announcement = try await child.nextLine(within: timeout, "LISTENING")
            let fields = announcement.split(separator: " ")
            guard fields.count == 4, fields[0] == "LISTENING", let port = Int(fields[2]), let count = Int(fields[3]) else {
                throw TestChildError(.unexpectedOutput, child: child.name, "announced \(announcement.debugDescription)",
                                     transcript: child.transcript)
            }
            let lines = try await child.nextLines(count, within: deadline - .now, "ID52")
            identities = try lines.map { try ID52(parsing: $0) }
            host = String(fields[1])
            self.port = port
            self.child = child
        } catch {
            await child.kill()
            throw error
        }
    }

    /// `<id52>@<host>:<port>` of identity `index`.
    public func address(_ index: Int = 0) -> String { "\(identities[index])@\(host):\(port)" }

    /// Ends its standard input and waits for it to exit; kills it if it has not within `timeout`.
    public func stop(within timeout: Duration = .seconds(15)) async -> TestChild.Ending {
        child.closeStandardInput()
        return await child.exitOrKill(within: timeout)
    }

    /// SIGKILL: the peer vanishes without a word, as a crashed process does.
    public func kill() async {
        await child.kill()
    }
}
