import Foundation

/// `Scripts/iroh_relay.py` in `.venv-test`: an iroh relay on 127.0.0.1 written from the
/// protocol, for any test target that needs one (the relay client's tests, QUIC over the relay,
/// iroh end to end). The script's docstring lists its options and stdout lines. Killed when
/// released or by ``kill()``; ``start(port:arguments:)`` with the same port brings it back.
public final class PythonTestRelay: Sendable {
    public let port: Int
    private let child: PythonLineChild

    public static let script = PythonInterop.repositoryRoot.appendingPathComponent("Tests/PeerpoolTestSupport/Scripts/iroh_relay.py")

    /// `http://127.0.0.1:<port>`, as a relay client takes it.
    public var url: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, child: PythonLineChild) {
        self.port = port
        self.child = child
    }

    deinit {
        child.stop()
    }

    /// Starts a relay on `port` (0: any free port) once it reported its port. `arguments`:
    /// `--v1`, `--refuse REASON`, `--garbage-once`, `--no-pong`, `--tls-dir DIR`,
    /// `--receive-buffer BYTES`, `--log-pings` (see the script's docstring).
    public static func start(port: Int = 0, arguments: [String] = [], within timeout: Duration = .seconds(30)) async throws -> PythonTestRelay {
        guard FileManager.default.isExecutableFile(atPath: PythonInterop.interpreter.path) else {
            throw TestSupportError("\(PythonInterop.interpreter.path) is missing: run `deploy/setup.sh --test` in \(PythonInterop.repositoryRoot.path)")
        }
        let child = try PythonLineChild(
            executable: PythonInterop.interpreter,
            arguments: ["-u", script.path, "--port", "\(port)"] + arguments,
            name: "iroh relay", lineLimit: 1 << 16, transcriptLimit: 400, makeError: { TestSupportError($0) })
        do {
            let line = try await child.awaitLine(within: timeout, description: "LISTENING") { unread in
                unread.firstIndex { $0.hasPrefix("LISTENING ") }.map { unread.remove(at: $0) }
            }
            guard let port = Int(line.dropFirst("LISTENING ".count)) else {
                throw TestSupportError("iroh relay printed \(line)\n\(child.transcript)")
            }
            return PythonTestRelay(port: port, child: child)
        } catch {
            child.stop()
            throw error
        }
    }

    /// The rest of the next unread `<keyword> ...` line (ACCEPTED, REFUSED, GONE, GARBAGE, PING),
    /// consumed; other lines stay unread. Throws, with the transcript, after `timeout`.
    public func value(of keyword: String, within timeout: Duration = .seconds(20)) async throws -> String {
        let prefix = keyword + " "
        let line = try await child.awaitLine(within: timeout, description: keyword) { unread in
            unread.firstIndex { $0.hasPrefix(prefix) }.map { unread.remove(at: $0) }
        }
        return String(line.dropFirst(prefix.count))
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
            throw TestSupportError("iroh relay printed STATS \(fields)\n\(child.transcript)")
        }
        return Stats(forwarded: forwarded, forwardedBytes: bytes, dropped: dropped, gone: gone)
    }

    /// Stops reading from clients (returns once the relay says so): with `--receive-buffer`
    /// their sockets fill and their writes back up.
    public func pauseReading() async throws {
        try child.writeLine("pause")
        _ = try await child.awaitLine(within: .seconds(10), description: "PAUSED") { unread in
            unread.firstIndex(of: "PAUSED").map { unread.remove(at: $0) }
        }
    }

    /// Reads from clients again.
    public func resumeReading() throws {
        try child.writeLine("resume")
    }

    /// SIGKILL: every connection drops without a close; the port is free for a new relay.
    public func kill() {
        child.stop()
    }

    public var transcript: String { child.transcript }
}
