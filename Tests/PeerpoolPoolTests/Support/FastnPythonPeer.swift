import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import Synchronization

/// `Interop/fastn_peer.py` in a child process: an aioquic (independent QUIC stack) peer speaking
/// fastn-net's stream protocol, as a server (`startServer`) or a one-shot client (`runClient`).
/// The script's docstring lists its stdout lines (`READY`, `SNI`, `PEER`, `STREAM`, `BADHEADER`;
/// `SERVERKEY`, `PONG`, `ECHO`, `NOACK`, `GARBAGE`, `AFTER_GARBAGE`).
///
/// Like PeerpoolQUICTests' `PythonPeer`, on the same PeerpoolTestSupport helpers, but lines are
/// queued and polled with deadlines, so a timed-out wait loses nothing. `deinit` kills the child;
/// a server also exits by itself when our end of its stdin closes.
final class FastnPythonPeer: Sendable {
    enum ClientMode: String, Sendable {
        case ping, echo, garbage
    }

    /// The server's UDP port on 127.0.0.1.
    let port: Int
    private let child: Child

    static let repositoryRoot = PythonInterop.repositoryRoot
    static let interpreter = PythonInterop.interpreter
    static let script = repositoryRoot.appendingPathComponent("Tests/PeerpoolPoolTests/Interop/fastn_peer.py")

    private init(port: Int, child: Child) {
        self.port = port
        self.child = child
    }

    deinit {
        child.stop()
    }

    /// A server on 127.0.0.1 presenting `certPEM`, once it reported its port.
    static func startServer(
        certPEM: String, keyPEM: String, arguments: [String] = [], within timeout: Duration = .seconds(20)
    ) async throws -> FastnPythonPeer {
        let child = try Child(["server", "--host", "127.0.0.1", "--port", "0"] + arguments, certPEM: certPEM, keyPEM: keyPEM)
        do {
            let ready = try await child.value(of: "READY", within: timeout)
            guard let port = Int(ready) else { throw FastnPythonPeerError("fastn peer reported port \"\(ready)\"") }
            return FastnPythonPeer(port: port, child: child)
        } catch {
            child.stop()
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
        let child = try Child(
            ["client", "--host", "127.0.0.1", "--port", "\(port)", "--sni", sni, "--mode", mode.rawValue] + arguments,
            certPEM: certPEM, keyPEM: keyPEM)
        defer { child.stop() }
        guard let status = try await child.exitStatus(within: timeout) else {
            throw FastnPythonPeerError("fastn client (\(mode)) still running after \(timeout)\n\(child.transcript)")
        }
        guard status == 0 else {
            throw FastnPythonPeerError("fastn client (\(mode)) exited with \(status)\n\(await child.finalTranscript())")
        }
        return child.takeLines { _ in true }
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
        try await child.value(of: keyword, within: timeout)
    }

    /// The next whole `STREAM <json>` or `BADHEADER <reason>` line (one per stream the server
    /// saw a header on), skipping other lines.
    func nextStreamLine(within timeout: Duration = .seconds(15)) async throws -> String {
        let line = try await child.nextLine(within: timeout, description: "STREAM or BADHEADER") {
            $0.hasPrefix("STREAM ") || $0.hasPrefix("BADHEADER ")
        }
        return line
    }

    /// Everything the peer wrote so far, prefixed by `stdout:` or `stderr:`.
    var transcript: String {
        child.transcript
    }
}

struct FastnPythonPeerError: Error, CustomStringConvertible {
    let description: String

    init(_ message: String) {
        description = message
    }
}

extension FastnPythonPeer {
    /// The aioquic peer process (a `PythonLineChild`) and its credential files.
    private final class Child: Sendable {
        private let child: PythonLineChild
        private let directory: URL

        init(_ arguments: [String], certPEM: String, keyPEM: String) throws {
            guard FileManager.default.isExecutableFile(atPath: FastnPythonPeer.interpreter.path) else {
                throw FastnPythonPeerError(
                    "\(FastnPythonPeer.interpreter.path) is missing, so the fastn interoperability tests cannot run. "
                        + "Run `deploy/setup.sh --test` in \(FastnPythonPeer.repositoryRoot.path) to create it.")
            }
            let (directory, certificatePath, keyPath) = try writeCredentials(
                certificatePEM: certPEM, keyPEM: keyPEM, prefix: "peerpool-fastn")
            self.directory = directory
            do {
                // A BADHEADER line quotes at most a 64 KiB header; anything far longer is dropped.
                child = try PythonLineChild(
                    executable: FastnPythonPeer.interpreter,
                    arguments: ["-u", FastnPythonPeer.script.path] + arguments
                        + ["--cert", certificatePath.path, "--key", keyPath.path, "--alpn", "/fastn/entity/0.1"],
                    name: "fastn peer", lineLimit: 1 << 20, transcriptLimit: 500, makeError: { FastnPythonPeerError($0) })
            } catch {
                try? FileManager.default.removeItem(at: directory)
                throw FastnPythonPeerError("cannot start \(FastnPythonPeer.interpreter.path): \(error)")
            }
        }

        var transcript: String { child.transcript }
        func finalTranscript(within timeout: Duration = .seconds(3)) async -> String { await child.finalTranscript(within: timeout) }
        func exitStatus(within timeout: Duration) async throws -> Int32? { try await child.exitStatus(within: timeout) }

        /// Removes and returns the unread stdout lines up to and including the first one
        /// `matching` accepts; all of them if none does (then only those `matching` accepts).
        func takeLines(upToFirst: Bool = false, _ matching: (String) -> Bool) -> [String] {
            child.withUnread { Self.take(&$0, upToFirst: upToFirst, matching) }
        }

        private static func take(_ unread: inout [String], upToFirst: Bool, _ matching: (String) -> Bool) -> [String] {
            var taken: [String] = []
            while !unread.isEmpty {
                let line = unread.removeFirst()
                if matching(line) {
                    taken.append(line)
                    if upToFirst { break }
                }
            }
            return taken
        }

        /// The next unread stdout line `matching` accepts, skipping the others. Throws, with the
        /// transcript, if the child exits or `timeout` passes first.
        func nextLine(
            within timeout: Duration, description: String, _ matching: @escaping @Sendable (String) -> Bool
        ) async throws -> String {
            try await child.awaitLine(
                within: timeout, description: description,
                hint: { $0.contains("No module named") ? " (is aioquic installed? run `deploy/setup.sh --test`)" : "" }
            ) { Self.take(&$0, upToFirst: true, matching).first }
        }

        func value(of keyword: String, within timeout: Duration) async throws -> String {
            let prefix = keyword + " "
            let line = try await nextLine(within: timeout, description: keyword) { $0.hasPrefix(prefix) }
            return String(line.dropFirst(prefix.count))
        }

        /// Kills the child and removes its files.
        func stop() {
            child.stop()
            try? FileManager.default.removeItem(at: directory)
        }
    }
}
