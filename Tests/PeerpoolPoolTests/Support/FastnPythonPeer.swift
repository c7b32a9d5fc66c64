import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport

/// `Interop/fastn_peer.py` in a child process: an aioquic (independent QUIC stack) peer speaking
/// fastn-net's stream protocol, as a server (`startServer`) or a one-shot client (`runClient`).
/// The script's docstring lists its stdout lines (`READY`, `SNI`, `PEER`, `STREAM`, `BADHEADER`;
/// `SERVERKEY`, `PONG`, `ECHO`, `NOACK`, `GARBAGE`, `AFTER_GARBAGE`).
///
/// Each wait takes the next line of its kind and drops the lines before it (they stay in the
/// transcript). Killed when released; a server also exits by itself when our end of its stdin
/// closes.
final class FastnPythonPeer: Sendable {
    enum ClientMode: String, Sendable {
        case ping, echo, garbage
    }

    /// The server's UDP port on 127.0.0.1.
    let port: Int
    private let child: TestChild
    /// The server's certificate and key files.
    private let directory: URL

    static let script = "Tests/PeerpoolPoolTests/Interop/fastn_peer.py"

    private init(port: Int, child: TestChild, directory: URL) {
        self.port = port
        self.child = child
        self.directory = directory
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// A server on 127.0.0.1 presenting `certPEM`, once it reported its port.
    static func startServer(
        certPEM: String, keyPEM: String, arguments: [String] = [], within timeout: Duration = .seconds(20)
    ) async throws -> FastnPythonPeer {
        let (directory, certificate, key) = try writeCredentials(certificatePEM: certPEM, keyPEM: keyPEM, prefix: "peerpool-fastn")
        do {
            let child = try TestChild(command(["server", "--host", "127.0.0.1", "--port", "0"] + arguments, certificate, key))
            do {
                let ready = try await child.value(of: "READY", within: timeout, earlier: .dropped)
                guard let port = Int(ready) else { throw FastnPythonPeerError("fastn peer reported port \"\(ready)\"") }
                return FastnPythonPeer(port: port, child: child, directory: directory)
            } catch {
                await child.kill()
                throw error
            }
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    static func startServer(identity: SecretKey) async throws -> FastnPythonPeer {
        let (certificate, key) = try pem(for: identity)
        return try await startServer(certPEM: certificate, keyPEM: key)
    }

    /// Runs a client against 127.0.0.1:`port` with `sni` (the server's ID52) and returns every
    /// stdout line it printed. `arguments` adds options such as `--protocol` or `--garbage`.
    /// Throws, with the transcript, if it exits non-zero or runs longer than `timeout`.
    static func runClient(
        mode: ClientMode, port: Int, sni: String, certPEM: String, keyPEM: String,
        arguments: [String] = [], within timeout: Duration = .seconds(15)
    ) async throws -> [String] {
        let (directory, certificate, key) = try writeCredentials(certificatePEM: certPEM, keyPEM: keyPEM, prefix: "peerpool-fastn")
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = try await TestChild.run(
            command(["client", "--host", "127.0.0.1", "--port", "\(port)", "--sni", sni, "--mode", mode.rawValue] + arguments,
                    certificate, key),
            within: timeout)
        guard !output.timedOut else {
            throw FastnPythonPeerError("fastn client (\(mode)) still running after \(timeout)\n\(output.transcript)")
        }
        guard output.status == 0 else {
            throw FastnPythonPeerError("fastn client (\(mode)) exited with \(output.termination.map { "\($0)" } ?? "nothing")\n\(output.transcript)")
        }
        return output.lines
    }

    static func runClient(
        mode: ClientMode, port: Int, server: ID52, identity: SecretKey,
        arguments: [String] = [], within timeout: Duration = .seconds(15)
    ) async throws -> [String] {
        let (certificate, key) = try pem(for: identity)
        return try await runClient(
            mode: mode, port: port, sni: server.description, certPEM: certificate, keyPEM: key,
            arguments: arguments, within: timeout)
    }

    /// The rest of the next stdout line starting with `keyword` and a space; earlier lines are
    /// skipped (they stay in `transcript`).
    func value(of keyword: String, within timeout: Duration = .seconds(15)) async throws -> String {
        try await child.value(of: keyword, within: timeout, earlier: .dropped)
    }

    /// The next whole `STREAM <json>` or `BADHEADER <reason>` line (one per stream the server
    /// saw a header on), skipping other lines.
    func nextStreamLine(within timeout: Duration = .seconds(15)) async throws -> String {
        try await child.nextLine(
            matching: { $0.hasPrefix("STREAM ") || $0.hasPrefix("BADHEADER ") }, within: timeout, "STREAM or BADHEADER",
            earlier: .dropped)
    }

    /// Everything the peer wrote so far, prefixed by `stdout:` or `stderr:`.
    var transcript: String {
        child.transcript
    }

    /// The script with `arguments` and the credential files; a BADHEADER line quotes at most a
    /// 64 KiB header, so lines far longer than that are dropped.
    private static func command(_ arguments: [String], _ certificate: URL, _ key: URL) throws -> TestChild.Command {
        var command = try PythonInterop.command(
            "fastn peer", script: script,
            arguments: arguments + ["--cert", certificate.path, "--key", key.path, "--alpn", "/fastn/entity/0.1"])
        command.lineLimit = 1 << 20
        return command
    }
}

struct FastnPythonPeerError: Error, CustomStringConvertible {
    let description: String

    init(_ message: String) {
        description = message
    }
}
