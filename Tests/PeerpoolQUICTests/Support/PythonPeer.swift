import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import Synchronization

/// `Interop/aioquic_peer.py` running in a child process: an aioquic (independent QUIC stack)
/// server or client with an identity the test chose, so the test knows its ID52 exactly.
///
/// The script reports through stdout lines (`READY`, `SNI`, `PEER`, `SERVERKEY`, `ECHO`), which
/// `value(of:within:)` waits for with a deadline. Everything it wrote, stderr included, is kept
/// for failure messages (`transcript`). `stop()` (also run by `deinit`) kills the child; a server
/// also exits by itself when our end of its stdin closes, so a crashed test leaves no peer behind.
final class PythonPeer: Sendable {
    let identity: SecretKey
    private let process: Process
    /// Held open for the server's lifetime: its EOF tells the script to exit.
    private let stdin: Pipe
    private let lines: AsyncStream<String>
    /// Finishes with the exit status; any number of waiters may await it (see `exit(within:)`).
    private let exitStatus: Task<Int32, any Error>
    private let output: Transcript
    /// Finishes once the child's stderr reached EOF, so every line of it is in `output`.
    private let stderrClosed: Task<Void, any Error>
    private let directory: URL

    static let repositoryRoot = PythonInterop.repositoryRoot
    static let interpreter = PythonInterop.interpreter
    static let script = repositoryRoot.appendingPathComponent("Tests/PeerpoolQUICTests/Interop/aioquic_peer.py")

    /// An aioquic server on 127.0.0.1 answering as `identity`, once it reported its port.
    static func server(identity: SecretKey, within timeout: Duration = .seconds(20)) async throws -> (PythonPeer, port: Int) {
        let peer = try PythonPeer(mode: "server", arguments: ["--host", "127.0.0.1", "--port", "0"], identity: identity)
        do {
            let ready = try await peer.value(of: "READY", within: timeout)
            guard let port = Int(ready) else { throw PythonPeerError("aioquic server reported port \"\(ready)\"") }
            return (peer, port)
        } catch {
            peer.stop()
            throw error
        }
    }

    /// An aioquic client dialling 127.0.0.1:`port` as `identity`, with `serverName` in SNI; it
    /// sends `message` on one stream and reports the echo.
    static func client(identity: SecretKey, serverName: ID52, port: Int, message: String) throws -> PythonPeer {
        try PythonPeer(
            mode: "client",
            arguments: ["--host", "127.0.0.1", "--port", "\(port)", "--sni", serverName.description, "--message", message],
            identity: identity)
    }

    private init(mode: String, arguments: [String], identity: SecretKey) throws {
        guard FileManager.default.isExecutableFile(atPath: Self.interpreter.path) else {
            throw PythonPeerError(
                "\(Self.interpreter.path) is missing, so the aioquic interoperability tests cannot run. "
                    + "Run `deploy/setup.sh --test` in \(Self.repositoryRoot.path) to create it.")
        }
        self.identity = identity
        let (certificatePEM, keyPEM) = try pem(for: identity)
        let (directory, certificatePath, keyPath) = try writeCredentials(
            certificatePEM: certificatePEM, keyPEM: keyPEM, prefix: "peerpool-aioquic")
        self.directory = directory

        process = Process()
        process.executableURL = Self.interpreter
        // -u: unbuffered, though the script flushes every line anyway.
        process.arguments = ["-u", Self.script.path, mode] + arguments
            + ["--cert", certificatePath.path, "--key", keyPath.path, "--alpn", "/fastn/entity/0.1"]
        let stdout = Pipe()
        let stderr = Pipe()
        stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr

        let output = Transcript()
        self.output = output
        let (lines, linesContinuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(1024))
        self.lines = lines
        let (exits, exitContinuation) = AsyncStream<Int32>.makeStream(bufferingPolicy: .bufferingNewest(1))
        exitStatus = Task {
            for await status in exits { return status }
            throw PythonPeerError("the aioquic peer's exit status was lost")
        }
        let (stderrEnd, stderrEndContinuation) = AsyncStream<Void>.makeStream()
        stderrClosed = Task {
            for await _ in stderrEnd {}
        }
        process.terminationHandler = { process in
            exitContinuation.yield(process.terminationStatus)
            exitContinuation.finish()
        }
        do {
            try process.run()
        } catch {
            exitContinuation.finish()
            stderrEndContinuation.finish()
            try? FileManager.default.removeItem(at: directory)
            throw PythonPeerError("cannot start \(Self.interpreter.path): \(error)")
        }
        // Blocking reads on threads of their own, not on the cooperative pool. Each ends at EOF,
        // when the child exits and its ends of the pipes close.
        // A line longer than 64 KiB is not one of the script's.
        readLines(from: stdout.fileHandleForReading, limit: 64 * 1024) { line in
            output.append("stdout: \(line)")
            linesContinuation.yield(line)
        } atEnd: {
            linesContinuation.finish()
        }
        readLines(from: stderr.fileHandleForReading, limit: 64 * 1024) { line in
            output.append("stderr: \(line)")
        } atEnd: {
            stderrEndContinuation.finish()
        }
    }

    deinit {
        stop()
    }

    /// Everything the peer wrote so far, one line each, prefixed by `stdout:` or `stderr:`.
    var transcript: String {
        output.text
    }

    /// The transcript once the peer closed its stderr (it exited), waiting at most `timeout`:
    /// for failure messages, so they show the peer's last words.
    func finalTranscript(within timeout: Duration = .seconds(3)) async -> String {
        _ = await completes(stderrClosed, within: timeout)
        return transcript
    }

    /// The rest of the first stdout line starting with `keyword` and a space, waiting at most
    /// `timeout`. Lines before it are skipped (they stay in `transcript`). Throws, with the
    /// transcript, if the peer exits or the time runs out first. Call from one task at a time.
    func value(of keyword: String, within timeout: Duration = .seconds(15)) async throws -> String {
        let lines = self.lines
        let prefix = keyword + " "
        let found = try await withDeadline(timeout) { () -> String? in
            for await line in lines where line.hasPrefix(prefix) {
                return String(line.dropFirst(prefix.count))
            }
            return nil
        }
        if case .some(.some(let value)) = found {
            return value
        }
        let what = found == nil ? "reported no \(keyword) line within \(timeout)" : "exited without reporting \(keyword)"
        let transcript = await finalTranscript()
        let hint = transcript.contains("No module named") ? " (is aioquic installed? run `deploy/setup.sh --test`)" : ""
        throw PythonPeerError("aioquic peer \(what)\(hint)\n--- aioquic peer output ---\n\(transcript)")
    }

    /// The exit status, waiting at most `timeout`; nil if the peer is still running.
    func exit(within timeout: Duration = .seconds(15)) async throws -> Int32? {
        guard await completes(exitStatus, within: timeout) else { return nil }
        return try await exitStatus.value
    }

    /// Kills the peer (SIGKILL: it holds nothing worth a graceful exit) and removes its files.
    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }
}

struct PythonPeerError: Error, CustomStringConvertible {
    let description: String

    init(_ message: String) {
        description = message
    }
}

/// Lines a child wrote, bounded so a runaway child cannot fill memory.
private final class Transcript: Sendable {
    private let lines = Mutex<[String]>([])
    private static let limit = 500

    func append(_ line: String) {
        lines.withLock {
            if $0.count < Self.limit { $0.append(line) }
        }
    }

    var text: String {
        lines.withLock { $0.joined(separator: "\n") }
    }
}
