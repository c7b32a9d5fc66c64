import Foundation

/// `Scripts/iroh_relay.py` in `.venv-test`: an iroh relay on 127.0.0.1 written from the
/// protocol, for any test target that needs one (the relay client's tests, QUIC over the relay,
/// iroh end to end). The script's docstring lists its options and stdout lines. Killed when
/// released or by ``kill()``; ``start(port:arguments:)`` with the same port brings it back.
public final class PythonTestRelay: Sendable {
    public let port: Int
    private let child: TestChild

    private static let script = "Tests/PeerpoolTestSupport/Scripts/iroh_relay.py"

    /// `http://127.0.0.1:<port>`, as a relay client takes it.
    public var url: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, child: TestChild) {
        self.port = port
        self.child = child
    }

    /// Starts a relay on `port` (0: any free port) once it reported its port. `arguments`:
    /// `--v1`, `--refuse REASON`, `--garbage-once`, `--no-pong`, `--tls-dir DIR`,
    /// `--receive-buffer BYTES`, `--log-pings` (see the script's docstring).
    public static func start(port: Int = 0, arguments: [String] = [], within timeout: Duration = .seconds(30)) async throws -> PythonTestRelay {
        var command = try PythonInterop.command("iroh relay", script: script, arguments: ["--port", "\(port)"] + arguments)
        command.transcriptLimit = 400
        let child = try TestChild(command)
        do {
            let announced = try await child.value(of: "LISTENING", within: timeout)
            guard let port = Int(announced) else {
                throw TestChildError(.unexpectedOutput, child: child.name, "announced LISTENING \(announced)", transcript: child.transcript)
            }
            return PythonTestRelay(port: port, child: child)
        } catch {
            await child.kill()
            throw error
        }
    }

    /// The rest of the next unread `<keyword> ...` line (ACCEPTED, REFUSED, GONE, GARBAGE, PING),
    /// consumed; other lines stay unread. Throws, with the transcript, after `timeout`.
    public func value(of keyword: String, within timeout: Duration = .seconds(20)) async throws -> String {
        try await child.value(of: keyword, within: timeout)
    }

    /// Sends frame 12 (restarting) to every connected client.
    public func announceRestart(reconnectInMilliseconds: Int, tryForMilliseconds: Int) throws {
        try child.writeLine("restarting \(reconnectInMilliseconds) \(tryForMilliseconds)")
    }

    /// What the relay has passed on so far (its `stats` command): datagram frames forwarded and
    /// their bytes, frames dropped for a slow destination, sends answered "endpoint gone".
    public struct Stats: Sendable, CustomStringConvertible {
        public let forwarded: Int
        public let forwardedBytes: Int
        public let dropped: Int
        public let gone: Int
        public var description: String { "forwarded \(forwarded) (\(forwardedBytes) bytes), dropped \(dropped), gone \(gone)" }
    }

    /// Asks the relay for its counts and waits (bounded) for the answer.
    public func stats(within timeout: Duration = .seconds(10)) async throws -> Stats {
        try child.writeLine("stats")
        let fields = try await value(of: "STATS", within: timeout).split(separator: " ")
        // forwarded <frames> <bytes> dropped <frames> gone <frames>
        guard fields.count == 7, let forwarded = Int(fields[1]), let bytes = Int(fields[2]), let dropped = Int(fields[4]),
              let gone = Int(fields[6]) else {
            throw TestChildError(.unexpectedOutput, child: child.name, "printed STATS \(fields)", transcript: child.transcript)
        }
        return Stats(forwarded: forwarded, forwardedBytes: bytes, dropped: dropped, gone: gone)
    }

    /// Stops reading from clients (returns once the relay says so): with `--receive-buffer`
    /// their sockets fill and their writes back up.
    public func pauseReading() async throws {
        try child.writeLine("pause")
        _ = try await child.nextLine(matching: { $0 == "PAUSED" }, within: .seconds(10), "PAUSED")
    }

    /// Reads from clients again.
    public func resumeReading() throws {
        try child.writeLine("resume")
    }

    /// SIGKILL: every connection drops without a close; once this returns the port is free
    /// for a new relay.
    public func kill() async {
        await child.kill()
    }

    public var transcript: String { child.transcript }
}
