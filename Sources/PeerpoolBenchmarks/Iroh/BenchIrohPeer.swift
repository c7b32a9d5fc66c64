import Foundation
import NIOCore
import PeerpoolCommandSupport
import PeerpoolIdentity
import PeerpoolPool

/// The Python side of `peerpool-bench iroh`: `iroh_bench_peer.py` (next to this file) run by
/// the test venv's Python, which has PyPI's `iroh` (Python bindings of iroh 1.4.1).
struct BenchIrohPython: Sendable {
    let python: String
    let script: String
    /// The package root, where the test scripts (the Python relay) are.
    let root: URL
    /// Keep the bindings' per-byte copy into Rust instead of the script's memmove.
    var byteCopy = false
    /// Every endpoint's home relay (`peerpool-bench relay`).
    var relay: String?

    private var options: [String] { (byteCopy ? ["--python-byte-copy"] : []) + (relay.map { ["--relay", $0] } ?? []) }

    /// `--python`, else `.venv-test/bin/python` in the working directory or the package root
    /// this executable was built in; the script from the package sources.
    static func locate(python given: String?, byteCopy: Bool) throws -> BenchIrohPython {
        let executable = URL(fileURLWithPath: ChildProcess.currentExecutable)
        // <root>/.build/<config>/peerpool-bench, or <root>/.build/<triple>/<config>/peerpool-bench
        var roots = [URL(fileURLWithPath: FileManager.default.currentDirectoryPath)]
        var up = executable.deletingLastPathComponent()
        for _ in 0..<4 {
            up = up.deletingLastPathComponent()
            roots.append(up)
        }
        guard let root = roots.first(where: {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("Sources/PeerpoolBenchmarks/Iroh/iroh_bench_peer.py").path)
        }) else {
            throw CommandError(.missingTool, "cannot find Sources/PeerpoolBenchmarks/Iroh/iroh_bench_peer.py: run from the package directory")
        }
        let python = given ?? root.appendingPathComponent(".venv-test/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw CommandError(.missingTool, "no Python with iroh at \(python): run ./deploy/setup.sh --test (it installs iroh==1.2.0 into .venv-test), or pass --python")
        }
        return BenchIrohPython(
            python: python, script: root.appendingPathComponent("Sources/PeerpoolBenchmarks/Iroh/iroh_bench_peer.py").path,
            root: root, byteCopy: byteCopy)
    }

    /// `serve`: an iroh endpoint serving fastn's Ping, sink, source and echo until stopped.
    func serve() async throws -> (process: ChildProcess, peer: PeerAddress) {
        let process = try ChildProcess(
            executable: python, arguments: [script, "serve"] + options, standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        let line = try await process.readLine(timeout: .seconds(30))
        let fields = line?.split(separator: " ") ?? []
        guard fields.count == 3, fields[0] == "READY", let peer = try? PeerAddress(parsing: "\(fields[1])@\(fields[2])") else {
            _ = try? await process.terminate(grace: .seconds(1))
            throw CommandError(.childFailed, "iroh serve answered \(line.map { "\"\($0.prefix(200))\"" } ?? "nothing") instead of READY <id52> <host:port>")
        }
        return (process, peer)
    }

    /// What one `send` run reported.
    struct Sent: Decodable, Sendable {
        let connect_ms: Double
        let connect_and_ping_ms: Double
        let seconds: Double
        let bytes: Int
        let cpu_s: Double
    }

    /// `send`: an iroh endpoint connects to `peer`, pings, and writes `bytes` to its sink.
    func send(to peer: PeerAddress, bytes: Int, timeout: Duration, viaRelay: String? = nil) async throws -> Sent {
        let process = try ChildProcess(
            executable: python,
            arguments: [script, "send", "--peer", "\(peer)", "--bytes", "\(bytes)"] + options + (viaRelay.map { ["--via-relay", $0] } ?? []),
            standardInput: .null, standardOutput: .pipe, standardError: .inherit)
        let line = try await process.readLine(timeout: timeout, limit: 4096)
        let termination = try await process.wait(timeout: .seconds(10))
        guard termination.succeeded, let line, let sent = try? JSONDecoder().decode(Sent.self, from: Data(line.utf8)) else {
            throw CommandError(.childFailed, "iroh send to \(peer) ended with \(termination), saying \(line.map { "\"\($0.prefix(200))\"" } ?? "nothing")")
        }
        return sent
    }

    /// `hold`: one iroh endpoint opens `count` connections to `peer` and holds them; returns the
    /// process (stop it to close them) and its RSS before and after, KiB.
    func hold(to peer: PeerAddress, count: Int) async throws -> (process: ChildProcess, beforeKiB: Int, afterKiB: Int, connections: Int) {
        let process = try ChildProcess(
            executable: python, arguments: [script, "hold", "--peer", "\(peer)", "--count", "\(count)"] + options,
            standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        let line = try await process.readLine(timeout: .seconds(60) + .milliseconds(50 * count))
        let fields = line?.split(separator: " ").compactMap { Int($0) } ?? []
        guard line?.hasPrefix("READY ") == true, fields.count == 3 else {
            _ = try? await process.terminate(grace: .seconds(1))
            throw CommandError(.childFailed, "iroh hold answered \(line.map { "\"\($0.prefix(200))\"" } ?? "nothing")")
        }
        return (process, fields[0], fields[1], fields[2])
    }
}
