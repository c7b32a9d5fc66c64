import Foundation
import NIOCore
import PeerpoolIdentity

/// A `peerpool listen --exit-on-stdin-eof` child that `bench pool` dials: where it listens and
/// the ID52s it answers as.
///
/// Standard input stays a pipe to us, so the child exits with us even if we are killed. `stop()`
/// closes that pipe and then sends SIGTERM, with SIGKILL after a grace period.
public struct ListenerProcess: Sendable {
    public let process: ChildProcess
    public let address: SocketAddress
    public let identities: [ID52]

    /// Starts the child with `count` identities and reads its announcement: `LISTENING <host>
    /// <port> <n>`, then n ID52s. Generating the identities dominates start-up, so the deadline
    /// for the first line grows with `count`.
    public static func start(executable: String, identities count: Int, arguments extra: [String] = []) async throws -> ListenerProcess {
        let process = try ChildProcess(
            executable: executable,
            arguments: ["listen", "--address", "127.0.0.1:0", "--identities", "\(count)", "--exit-on-stdin-eof"] + extra,
            standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        do {
            return try await readAnnouncement(of: process, executable: executable, count: count)
        } catch {
            _ = try? await process.terminate(grace: .seconds(1))
            throw error
        }
    }

    private static func readAnnouncement(of process: ChildProcess, executable: String, count: Int) async throws -> ListenerProcess {
        let firstLineTimeout = Duration.seconds(30) + .milliseconds(10 * count)
        let line = try await process.readLine(timeout: firstLineTimeout)
        let fields = line?.split(separator: " ") ?? []
        guard fields.count == 4, fields[0] == "LISTENING", let port = Int(fields[2]), let announced = Int(fields[3]) else {
            throw CommandError(.childFailed, "`\(executable) listen` answered \(line.map { "\"\($0.prefix(200))\"" } ?? "nothing") instead of LISTENING <host> <port> <n>")
        }
        guard announced == count else {
            throw CommandError(.childFailed, "`\(executable) listen --identities \(count)` announced \(announced) identities")
        }
        let address: SocketAddress
        do {
            address = try SocketAddress(ipAddress: String(fields[1]), port: port)
        } catch {
            throw CommandError(.childFailed, "`\(executable) listen` announced \(fields[1]):\(port), not an IP address and port")
        }
        var identities: [ID52] = []
        identities.reserveCapacity(count)
        while identities.count < count {
            let text = try await process.readLine(timeout: .seconds(10))
            guard let text, let id = ID52(text) else {
                throw CommandError(.childFailed, "`\(executable) listen` line \(identities.count + 2) is \(text.map { "\"\($0.prefix(80))\"" } ?? "missing"), not an ID52")
            }
            identities.append(id)
        }
        return ListenerProcess(process: process, address: address, identities: identities)
    }

    /// Lets the child go: end of standard input, then SIGTERM and, after `grace`, SIGKILL.
    public func stop(grace: Duration = .seconds(5)) async {
        process.closeStandardInput()
        _ = try? await process.terminate(grace: grace)
    }
}
