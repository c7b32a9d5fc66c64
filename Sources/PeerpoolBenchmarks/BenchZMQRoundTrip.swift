import ArgumentParser
import CZMQ
import Foundation
import PeerpoolCommandSupport
import Synchronization

/// The anchor for what the supervisor's process hop costs: a bare ZeroMQ DEALER ↔ ROUTER round
/// trip over `ipc://` between two processes (a 12-byte header and a 64-byte body, echoed), with
/// libzmq alone, no peerpool code. A request through the supervisor needs at least two of them.
///
/// The echo side is `peerpool-bench zmq-echo` (hidden); the timing side runs on a thread of its
/// own with blocking calls, as the cheapest possible client would.
enum BenchZMQRoundTrip {
    struct Figures: Sendable {
        /// Round-trip times, sorted.
        var rounds: [Duration]
        func p(_ fraction: Double) -> Duration { BenchPoolLatencies.percentile(fraction, of: rounds) ?? .zero }
    }

    /// Starts the echo child on a fresh ipc:// path, times `count` round trips after a warm-up,
    /// stops the child.
    static func measure(count: Int) async throws -> Figures {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-zmq-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        defer { try? FileManager.default.removeItem(at: directory) }
        let endpoint = "ipc://\(directory.path)/echo.sock"
        let echo = try ChildProcess(
            executable: ChildProcess.currentExecutable, arguments: ["zmq-echo", "--endpoint", endpoint],
            standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        do {
            guard try await echo.readLine(timeout: .seconds(10)) == "READY" else {
                throw CommandError(.childFailed, "zmq-echo did not say READY")
            }
            let result = await ChildProcess.onThread { timeRoundTrips(endpoint: endpoint, count: count) }
            echo.closeStandardInput()
            _ = try await echo.terminate(grace: .seconds(2))
            var rounds = try result.get()
            rounds.sort()
            return Figures(rounds: rounds)
        } catch {
            _ = try? await echo.terminate(grace: .seconds(1))
            throw error
        }
    }

    /// Blocking DEALER: 500 warm-up rounds, then `count` timed ones; each waits at most 5 s.
    private static func timeRoundTrips(endpoint: String, count: Int) -> Result<[Duration], CommandError> {
        guard let context = zmq_ctx_new() else { return .failure(CommandError(.spawnFailed, "zmq_ctx_new failed")) }
        defer { zmq_ctx_term(context) }
        guard let socket = zmq_socket(context, ZMQ_DEALER) else { return .failure(CommandError(.spawnFailed, "zmq_socket failed")) }
        defer { zmq_close(socket) }
        var linger: Int32 = 0
        var timeout: Int32 = 5000
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout, MemoryLayout<Int32>.size)
        guard zmq_connect(socket, endpoint) == 0 else { return .failure(CommandError(.spawnFailed, "zmq_connect \(endpoint) failed")) }
        let header = [UInt8](repeating: 1, count: 12)
        let body = [UInt8](repeating: 2, count: 64)
        var reply = [UInt8](repeating: 0, count: 128)
        let clock = ContinuousClock()
        var rounds: [Duration] = []
        rounds.reserveCapacity(count)
        for round in 0..<(500 + count) {
            let start = clock.now
            zmq_send(socket, header, header.count, ZMQ_SNDMORE)
            zmq_send(socket, body, body.count, 0)
            for part in 0..<2 {
                guard zmq_recv(socket, &reply, reply.count, 0) >= 0 else {
                    return .failure(CommandError(.timedOut, "no echo for round \(round), part \(part), within 5 s"))
                }
            }
            if round >= 500 { rounds.append(clock.now - start) }
        }
        return .success(rounds)
    }
}

/// `peerpool-bench zmq-echo`: the echo side of the bare ZeroMQ round trip (a ROUTER that sends
/// every message back to its sender), until standard input closes.
struct BenchZMQEchoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zmq-echo", abstract: "Echo ZeroMQ messages (the bare round trip `supervisor` compares with).",
        shouldDisplay: false)

    @Option(help: "ipc:// endpoint to bind.")
    var endpoint: String

    func run() throws {
        guard let context = zmq_ctx_new() else { throw CommandError(.spawnFailed, "zmq_ctx_new failed") }
        guard let socket = zmq_socket(context, ZMQ_ROUTER) else { throw CommandError(.spawnFailed, "zmq_socket failed") }
        var linger: Int32 = 0
        var timeout: Int32 = 200
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, MemoryLayout<Int32>.size)
        zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout, MemoryLayout<Int32>.size)
        guard zmq_bind(socket, endpoint) == 0 else { throw CommandError(.spawnFailed, "zmq_bind \(endpoint) failed") }
        // Standard input's end is the signal to stop: watched by a thread, checked between messages.
        let stop = StopFlag()
        Thread {
            var byte: UInt8 = 0
            while read(STDIN_FILENO, &byte, 1) > 0 {}
            stop.set()
        }.start()
        try FileHandle.standardOutput.write(contentsOf: Data("READY\n".utf8))
        var parts: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !stop.isSet {
            let count = zmq_recv(socket, &buffer, buffer.count, 0)
            guard count >= 0 else { continue }
            parts.append(Array(buffer[0..<min(Int(count), buffer.count)]))
            var more: Int32 = 0
            var size = MemoryLayout<Int32>.size
            zmq_getsockopt(socket, ZMQ_RCVMORE, &more, &size)
            if more == 0 {
                for (index, part) in parts.enumerated() {
                    zmq_send(socket, part, part.count, index < parts.count - 1 ? ZMQ_SNDMORE : 0)
                }
                parts.removeAll(keepingCapacity: true)
            }
        }
        zmq_close(socket)
        zmq_ctx_term(context)
    }
}

/// A flag one thread sets and another reads.
private final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .releasing) }
    var isSet: Bool { value.load(ordering: .acquiring) }
}
