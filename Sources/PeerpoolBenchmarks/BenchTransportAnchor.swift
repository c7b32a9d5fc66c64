import PeerpoolCommandSupport
import Foundation
import NIOCore
import NIOPosix
import PeerpoolIdentity

/// The anchor of `bench transport`: ngtcp2's own example server and client (GnuTLS builds,
/// Debian packages ngtcp2-server and ngtcp2-client) moving the same bytes over loopback.
///
/// The figure is the client process's wall time from spawn to exit, so it includes process
/// start-up, the handshake and writing the file to disk; fetching a 1-byte file estimates the
/// first two, and the adjusted figure subtracts that median.
struct BenchTransportAnchor {
    static let serverPath = "/usr/sbin/gtlsserver"
    static let clientPath = "/usr/bin/gtlsclient"

    var bytes: Int
    var runs: Int
    /// Bound on each full-size client run.
    var runTimeout: Duration

    /// Fails with `.missingTool` naming the Debian package when a program is missing.
    static func requireTools() throws {
        for (path, package) in [(serverPath, "ngtcp2-server"), (clientPath, "ngtcp2-client")]
        where !FileManager.default.isExecutableFile(atPath: path) {
            throw CommandError(.missingTool, "\(path) is missing: install Debian package \(package) (`deploy/setup.sh --test` installs it)")
        }
    }

    func measure(log: (String) -> Void) async throws -> BenchFigures {
        let directory = try Self.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let htdocs = directory + "/htdocs"
        let downloads = directory + "/downloads"
        for path in [htdocs, downloads] { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        let (keyPath, certificatePath) = try await Self.makeServerCertificate(in: directory, log: log)
        try Self.writeFile(htdocs + "/data.bin", size: bytes)
        try Self.writeFile(htdocs + "/tiny.bin", size: 1)

        let port = try await Self.freeUDPPort()
        let serverLog = directory + "/server.log"
        let server = try ChildProcess(
            executable: Self.serverPath,
            arguments: ["-q", "-d", htdocs, "127.0.0.1", "\(port)", keyPath, certificatePath],
            standardInput: .null, standardOutput: .file(serverLog), standardError: .file(serverLog + ".err"))
        do {
            try await Self.waitUntilListening(server, port: port, log: serverLog + ".err")
            let figures = try await measure(server: server, port: port, downloads: downloads, log: log)
            try await server.terminate()
            return figures
        } catch {
            _ = try? await server.terminate(grace: .seconds(1))
            throw error
        }
    }

    private func measure(server: ChildProcess, port: Int, downloads: String, log: (String) -> Void) async throws -> BenchFigures {
        var figures = BenchFigures(bytes: bytes)
        // The first 1-byte fetch doubles as a warm-up and is not counted.
        for _ in 0...runs {
            let run = try await fetch("tiny.bin", size: 1, port: port, downloads: downloads, timeout: .seconds(20))
            figures.handshakeRuns.append(run.wall)
        }
        figures.handshakeRuns.removeFirst()
        let handshake = benchMedian(figures.handshakeRuns)
        log("anchor  1-byte fetch (process + handshake): median \(String(format: "%.2f", handshake.benchMilliseconds)) ms")

        let serverCPUBefore = server.cpuSeconds
        var clientCPU = 0.0
        var clientPeak = 0
        for index in 1...runs {
            let run = try await fetch("data.bin", size: bytes, port: port, downloads: downloads, timeout: runTimeout)
            figures.fullRuns.append(run.wall)
            figures.transferRuns.append(max(run.wall - handshake, .nanoseconds(1)))
            clientCPU += run.termination.cpuSeconds
            clientPeak = max(clientPeak, run.termination.peakRSSKiB)
            log("anchor  run \(index): client wall \(String(format: "%.1f", figures.megabytesPerSecond(run.wall))) MB/s, "
                + "minus 1-byte fetch \(String(format: "%.1f", figures.megabytesPerSecond(figures.transferRuns[index - 1]))) MB/s")
        }
        figures.clientCPUSeconds = clientCPU
        figures.clientPeakRSSKiB = clientPeak
        if let before = serverCPUBefore, let after = server.cpuSeconds { figures.serverCPUSeconds = after - before }
        figures.serverPeakRSSKiB = server.peakRSSKiB
        return figures
    }

    /// Runs the client once for `file`; checks its exit status and the downloaded size.
    private func fetch(_ file: String, size: Int, port: Int, downloads: String, timeout: Duration) async throws
        -> (wall: Duration, termination: ChildProcess.Termination)
    {
        let target = downloads + "/" + file
        try? FileManager.default.removeItem(atPath: target)
        let clientLog = downloads + "/../client.log"
        let client = try ChildProcess(
            executable: Self.clientPath,
            arguments: ["-q", "--exit-on-all-streams-close", "--download", downloads,
                        "127.0.0.1", "\(port)", "https://127.0.0.1:\(port)/\(file)"],
            standardInput: .null, standardOutput: .file(clientLog), standardError: .file(clientLog))
        let termination = try await client.wait(timeout: timeout)
        let wall = termination.endedAt - client.startedAt
        guard termination.succeeded else {
            throw CommandError(.childFailed, "gtlsclient fetching \(file) ended with \(termination): \(Self.tail(of: clientLog))")
        }
        let got = (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int) ?? nil
        guard got == size else {
            throw CommandError(.verificationFailed, "gtlsclient saved \(got.map(String.init) ?? "no file") instead of \(size) bytes for \(file)")
        }
        try? FileManager.default.removeItem(atPath: target)
        return (wall, termination)
    }

    // MARK: Setup

    /// A new directory only we can read (0700) under the system's temporary directory.
    private static func makeTemporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "/peerpool-bench-\(UUID().uuidString)"
        do {
            try FileManager.default.createDirectory(
                atPath: path, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CommandError(.spawnFailed, "cannot create \(path): \(error)")
        }
        return path
    }

    /// key.pem + cert.pem for the server: a P-256 certificate from openssl when it is
    /// installed, else an ed25519 one built in-process (GnuTLS serves either; the client does
    /// not verify it).
    private static func makeServerCertificate(in directory: String, log: (String) -> Void) async throws -> (key: String, certificate: String) {
        let key = directory + "/key.pem"
        let certificate = directory + "/cert.pem"
        if let openssl = findInPath("openssl") {
            let openSSLLog = directory + "/openssl.log"
            let child = try ChildProcess(
                executable: openssl,
                arguments: ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                            "-keyout", key, "-out", certificate, "-days", "1", "-subj", "/CN=localhost"],
                standardInput: .null, standardOutput: .file(openSSLLog), standardError: .file(openSSLLog))
            let termination = try await child.wait(timeout: .seconds(30))
            guard termination.succeeded else {
                throw CommandError(.childFailed, "openssl req ended with \(termination): \(tail(of: openSSLLog))")
            }
        } else {
            log("anchor  openssl not found: serving an ed25519 certificate made in-process")
            let identity = try IdentityCertificate(secretKey: SecretKey.generate())
            try pem("PRIVATE KEY", identity.privateKeyDER).write(toFile: key, atomically: true, encoding: .utf8)
            try pem("CERTIFICATE", identity.certificateDER).write(toFile: certificate, atomically: true, encoding: .utf8)
        }
        return (key, certificate)
    }

    private static func pem(_ label: String, _ der: [UInt8]) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n\(body)\n-----END \(label)-----\n"
    }

    private static func findInPath(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Writes `size` bytes of 'x' in 1 MiB pieces, so a large file never sits in memory.
    private static func writeFile(_ path: String, size: Int) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw CommandError(.spawnFailed, "cannot create \(path)")
        }
        defer { try? handle.close() }
        let block = Data(repeating: UInt8(ascii: "x"), count: 1 << 20)
        var left = size
        while left > 0 {
            let piece = min(left, block.count)
            try handle.write(contentsOf: piece == block.count ? block : block.prefix(piece))
            left -= piece
        }
    }

    /// A UDP port nobody uses right now: bind port 0, read the port, close.
    private static func freeUDPPort() async throws -> Int {
        let channel = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = channel.localAddress?.port
        try await channel.close()
        guard let port else { throw CommandError(.spawnFailed, "the probe UDP socket has no port") }
        return port
    }

    /// Waits (5 s at most) until the server's socket shows in /proc/net/udp; a plain short
    /// wait elsewhere. Fails if the server exits first.
    private static func waitUntilListening(_ server: ChildProcess, port: Int, log: String) async throws {
        let entry = String(format: "0100007F:%04X", port)
        let deadline = ContinuousClock.now + .seconds(5)
        let hasProc = FileManager.default.fileExists(atPath: "/proc/net/udp")
        while ContinuousClock.now < deadline {
            guard server.isRunning else {
                throw CommandError(.childFailed, "gtlsserver exited at start: \(tail(of: log))")
            }
            if !hasProc {
                try await Task.sleep(for: .milliseconds(500))
                return
            }
            if let table = try? String(contentsOfFile: "/proc/net/udp", encoding: .utf8), table.contains(" \(entry) ") {
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CommandError(.timedOut, "gtlsserver did not bind UDP 127.0.0.1:\(port) within 5 s: \(tail(of: log))")
    }

    /// The last lines of a log file, for error messages.
    static func tail(of path: String, lines: Int = 5) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no output)" }
        let last = text.split(separator: "\n").suffix(lines).joined(separator: " | ")
        return last.isEmpty ? "(no output)" : last
    }
}
