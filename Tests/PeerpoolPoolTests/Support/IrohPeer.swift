import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport
import Synchronization

/// `Interop/iroh_peer.py` in a child process: a real iroh endpoint (n0's Python bindings) speaking
/// fastn-net's stream protocol, as a server (`startServer`) or a one-shot client (`runClient`).
/// The script's docstring lists its stdout lines.
///
/// Only ever started inside a loopback-only network namespace (`LoopbackNamespace`): iroh probes
/// the LAN gateway. `start` checks that before spawning, and the script checks it again.
/// `deinit` kills the child; a server also exits when our end of its stdin closes.
final class IrohPeer: Sendable {
    /// The server's UDP port on 127.0.0.1 and its ID52.
    let port: Int
    let id52: ID52
    private let child: LineChild

    static let script = PythonInterop.repositoryRoot.appendingPathComponent("Tests/PeerpoolPoolTests/Interop/iroh_peer.py")

    private init(port: Int, id52: ID52, child: LineChild) {
        self.port = port
        self.id52 = id52
        self.child = child
    }

    deinit {
        child.stop()
    }

    /// A server on 127.0.0.1, once it reported its port and ID52.
    static func startServer(secret: SecretKey? = nil, within timeout: Duration = .seconds(30)) async throws -> IrohPeer {
        var arguments = ["server"]
        if let secret { arguments += ["--secret", hex(secret)] }
        let child = try LineChild(arguments: arguments)
        do {
            let fields = try await child.value(of: "READY", within: timeout).split(separator: " ")
            guard fields.count == 2, let port = Int(fields[0]), let id52 = try? ID52(parsing: String(fields[1])) else {
                throw IrohPeerError("iroh peer reported READY \(fields)\n\(child.transcript)")
            }
            return IrohPeer(port: port, id52: id52, child: child)
        } catch {
            child.stop()
            throw error
        }
    }

    /// Runs a client dialling `peer` at 127.0.0.1:`port` and returns its stdout lines once it
    /// exited. `arguments` are `--mode`, `--count`, `--bytes`, `--streams`, `--secret`. Throws,
    /// with the transcript, if it runs longer than `timeout`; a non-zero exit is reported in the
    /// result (`status`), since refusals are expected in some tests.
    static func runClient(
        peer: ID52, port: Int, _ arguments: [String], within timeout: Duration = .seconds(60)
    ) async throws -> (status: Int32, lines: [String], transcript: String) {
        let child = try LineChild(arguments: [
            "client", "--peer", peer.description, "--addr", "127.0.0.1:\(port)",
            "--timeout", "\(timeout.components.seconds)",
        ] + arguments)
        defer { child.stop() }
        guard let status = try await child.exitStatus(within: timeout + .seconds(10)) else {
            throw IrohPeerError("iroh client \(arguments) still running after \(timeout)\n\(child.transcript)")
        }
        return (status, child.takeAll(), await child.finalTranscript())
    }

    /// A client dialling `peer` at 127.0.0.1:`port` that runs on (`--mode hold`), once it
    /// reported its ID52; `port` is then the port it dialled. Killed at `deinit` or `kill()`.
    static func startClient(peer: ID52, port: Int, _ arguments: [String], lifetime: Duration = .seconds(120)) async throws -> IrohPeer {
        let child = try LineChild(arguments: [
            "client", "--peer", peer.description, "--addr", "127.0.0.1:\(port)", "--timeout", "\(lifetime.components.seconds)",
        ] + arguments)
        do {
            let id52 = try ID52(parsing: try await child.value(of: "ID", within: .seconds(30)))
            return IrohPeer(port: port, id52: id52, child: child)
        } catch {
            child.stop()
            throw error
        }
    }

    /// The rest of the next stdout line starting with `keyword` and a space.
    func value(of keyword: String, within timeout: Duration = .seconds(15)) async throws -> String {
        try await child.value(of: keyword, within: timeout)
    }

    /// Unread stdout lines starting with `keyword` and a space, without it; consumed.
    func values(of keyword: String) -> [String] {
        let prefix = keyword + " "
        return child.takeAll { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// SIGKILL: the peer vanishes without a word.
    func kill() {
        child.stop()
    }

    var transcript: String { child.transcript }

    private static func hex(_ key: SecretKey) -> String {
        key.privateKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
    }
}

struct IrohPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

extension IrohPeer {
    /// The Python process and the lines it printed; waits are polled with deadlines, so a
    /// timed-out wait loses nothing.
    private final class LineChild: Sendable {
        private struct Output {
            var unread: [String] = []
            var transcript: [String] = []
            var stdoutClosed = false
            var stderrClosed = false
        }

        private let process = Process()
        /// Held open for the child's lifetime: its EOF tells a server to exit.
        private let stdin = Pipe()
        private let output = Mutex(Output())
        private static let transcriptLimit = 400

        init(arguments: [String]) throws {
            try LoopbackNamespace.requireInside()
            guard FileManager.default.isExecutableFile(atPath: PythonInterop.interpreter.path) else {
                throw IrohPeerError("\(PythonInterop.interpreter.path) is missing: run `deploy/setup.sh --test` in \(PythonInterop.repositoryRoot.path)")
            }
            // Niced a little: its Python bindings burn about 0.3 CPU s per MiB, and the rest of
            // the suite runs alongside on a 2-core machine with its own deadlines.
            process.executableURL = URL(fileURLWithPath: "/usr/bin/nice")
            process.arguments = ["-n", "5", PythonInterop.interpreter.path, "-u", IrohPeer.script.path] + arguments
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardInput = stdin
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            readLines(from: stdout.fileHandleForReading, limit: 1 << 16) { [self] line in
                output.withLock {
                    $0.unread.append(line)
                    Self.record("stdout: \(line)", in: &$0)
                }
            } atEnd: { [self] in
                output.withLock { $0.stdoutClosed = true }
            }
            readLines(from: stderr.fileHandleForReading, limit: 1 << 16) { [self] line in
                output.withLock { Self.record("stderr: \(line)", in: &$0) }
            } atEnd: { [self] in
                output.withLock { $0.stderrClosed = true }
            }
        }

        var transcript: String { output.withLock { $0.transcript.joined(separator: "\n") } }

        func finalTranscript(within timeout: Duration = .seconds(3)) async -> String {
            _ = try? await Self.poll(until: .now + timeout) { self.output.withLock { $0.stderrClosed } ? true : nil }
            return transcript
        }

        func takeAll(_ matching: (String) -> Bool = { _ in true }) -> [String] {
            output.withLock { output in
                let taken = output.unread.filter(matching)
                output.unread.removeAll(where: matching)
                return taken
            }
        }

        func value(of keyword: String, within timeout: Duration) async throws -> String {
            let prefix = keyword + " "
            let found = try await Self.poll(until: .now + timeout) { () -> String?? in
                let line: String? = self.output.withLock { output in
                    guard let index = output.unread.firstIndex(where: { $0.hasPrefix(prefix) }) else { return nil }
                    return output.unread.remove(at: index)
                }
                if let line { return .some(line) }
                return self.output.withLock { $0.stdoutClosed } ? .some(nil) : nil
            }
            if case .some(.some(let line)) = found { return String(line.dropFirst(prefix.count)) }
            let what = found == nil ? "printed no \(keyword) line within \(timeout)" : "exited without printing \(keyword)"
            throw IrohPeerError("iroh peer \(what)\n--- iroh peer output ---\n\(await finalTranscript())")
        }

        func exitStatus(within timeout: Duration) async throws -> Int32? {
            try await Self.poll(until: .now + timeout) {
                self.output.withLock { $0.stdoutClosed } && !self.process.isRunning ? self.process.terminationStatus : nil
            }
        }

        func stop() {
            if process.isRunning {
                Foundation.kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }

        private static func record(_ line: String, in output: inout Output) {
            if output.transcript.count >= transcriptLimit { output.transcript.removeFirst() }
            output.transcript.append(line)
        }

        private static func poll<T>(until deadline: ContinuousClock.Instant, _ check: () -> T?) async throws -> T? {
            while true {
                if let value = check() { return value }
                if ContinuousClock.now >= deadline { return nil }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }
}
