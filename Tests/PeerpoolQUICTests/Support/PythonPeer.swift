import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport

/// `Interop/aioquic_peer.py` running in a child process: an aioquic (independent QUIC stack)
/// server or client with an identity the test chose, so the test knows its ID52 exactly.
///
/// The script reports through stdout lines (`READY`, `SNI`, `PEER`, `SERVERKEY`, `ECHO`), which
/// `value(of:within:)` waits for with a deadline. Everything it wrote, stderr included, is kept
/// for failure messages (`transcript`). `stop()` kills the child (and releasing it reaps it); a
/// server also exits by itself when our end of its stdin closes, so a crashed test leaves no
/// peer behind.
final class PythonPeer: Sendable {
    let identity: SecretKey
    private let child: TestChild
    /// The certificate and key files.
    private let directory: URL

    static let script = "Tests/PeerpoolQUICTests/Interop/aioquic_peer.py"

    /// An aioquic server on 127.0.0.1 answering as `identity`, once it reported its port.
    static func server(identity: SecretKey, within timeout: Duration = .seconds(20)) async throws -> (PythonPeer, port: Int) {
        let peer = try PythonPeer(mode: "server", arguments: ["--host", "127.0.0.1", "--port", "0"], identity: identity)
        do {
            let ready = try await peer.value(of: "READY", within: timeout)
            guard let port = Int(ready) else { throw PythonPeerError("aioquic server reported port \"\(ready)\"") }
            return (peer, port)
        } catch {
            await peer.child.kill()
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
        self.identity = identity
        let (certificatePEM, keyPEM) = try pem(for: identity)
        let (directory, certificatePath, keyPath) = try writeCredentials(
            certificatePEM: certificatePEM, keyPEM: keyPEM, prefix: "peerpool-aioquic")
        do {
            child = try TestChild(PythonInterop.command(
                "aioquic peer", script: Self.script,
                arguments: [mode] + arguments + ["--cert", certificatePath.path, "--key", keyPath.path, "--alpn", "/fastn/entity/0.1"]))
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
        self.directory = directory
    }

    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Everything the peer wrote so far, one line each, prefixed by `stdout:` or `stderr:`.
    var transcript: String {
        child.transcript
    }

    /// The transcript once the peer closed its output (it exited), waiting at most `timeout`:
    /// for failure messages, so they show the peer's last words.
    func finalTranscript(within timeout: Duration = .seconds(3)) async -> String {
        await child.finalTranscript(within: timeout)
    }

    /// The rest of the first stdout line starting with `keyword` and a space, waiting at most
    /// `timeout`. Lines before it are skipped (they stay in `transcript`). Throws, with the
    /// transcript, if the peer exits or the time runs out first.
    func value(of keyword: String, within timeout: Duration = .seconds(15)) async throws -> String {
        try await child.value(of: keyword, within: timeout, earlier: .dropped)
    }

    /// The exit status, waiting at most `timeout`; nil if the peer is still running.
    func exit(within timeout: Duration = .seconds(15)) async -> Int32? {
        await child.exit(within: timeout)?.status
    }

    /// Kills the peer (SIGKILL: it holds nothing worth a graceful exit); it is reaped when this
    /// object goes.
    func stop() {
        child.signal(SIGKILL)
    }
}

struct PythonPeerError: Error, CustomStringConvertible {
    let description: String

    init(_ message: String) {
        description = message
    }
}
