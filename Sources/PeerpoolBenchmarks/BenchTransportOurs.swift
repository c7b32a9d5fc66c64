import PeerpoolCommandSupport
import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

/// Our side of `bench transport`: a `bench peer` child serves `SOURCE <n>`; this process
/// downloads it over a fresh endpoint, identity and connection per run, as a new client
/// process would.
struct BenchTransportOurs {
    /// This executable, to start `bench peer` from.
    var executable: String
    var bytes: Int
    var runs: Int
    /// Bound on each full-size run (connect + transfer).
    var runTimeout: Duration

    /// Path of the running executable: /proc/self/exe resolved, else argv[0].
    /// This benchmark executable: `peer` children are `peerpool-bench peer`.
    static var currentExecutable: String { ChildProcess.currentExecutable }

    /// The `peerpool` command built next to this executable: `listen` peers and `worker`s.
    static var peerpoolExecutable: String {
        URL(fileURLWithPath: currentExecutable).deletingLastPathComponent().appendingPathComponent("peerpool").path
    }

    func measure(log: (String) -> Void) async throws -> BenchFigures {
        let peer = try ChildProcess(
            executable: executable, arguments: ["peer", "--address", "127.0.0.1:0"],
            standardInput: .pipe, standardOutput: .pipe, standardError: .inherit)
        do {
            let figures = try await measure(against: peer, log: log)
            try await peer.terminate()
            return figures
        } catch {
            _ = try? await peer.terminate(grace: .seconds(1))
            throw error
        }
    }

    private func measure(against peer: ChildProcess, log: (String) -> Void) async throws -> BenchFigures {
        let line = try await peer.readLine(timeout: .seconds(20))
        let fields = line?.split(separator: " ") ?? []
        guard fields.count == 4, fields[0] == "READY", let id52 = ID52(String(fields[1])), let port = Int(fields[3]) else {
            throw CommandError(.childFailed, "`\(executable) bench peer` answered \(line.map { "\"\($0)\"" } ?? "nothing") instead of READY <id52> <host> <port>")
        }
        let address = try SocketAddress(ipAddress: String(fields[2]), port: port)
        var figures = BenchFigures(bytes: bytes)

        // Start-up + handshake estimate, and a warm-up: a fresh connection for 1 byte.
        for _ in 0...runs {
            let run = try await withBenchDeadline(.seconds(20), "a 1-byte download from bench peer") {
                try await Self.download(1, from: id52, at: address)
            }
            figures.handshakeRuns.append(run.full)
        }
        figures.handshakeRuns.removeFirst()
        log("ours    1-byte fetch (connect + request): median \(String(format: "%.2f", benchMedian(figures.handshakeRuns).benchMilliseconds)) ms")

        let serverCPUBefore = peer.cpuSeconds
        let clientCPUBefore = BenchFigures.ownCPUSeconds()
        for index in 1...runs {
            let bytes = self.bytes
            let run = try await withBenchDeadline(runTimeout, "downloading \(bytes) bytes from bench peer") {
                try await Self.download(bytes, from: id52, at: address)
            }
            figures.fullRuns.append(run.full)
            figures.transferRuns.append(run.transfer)
            log("ours    run \(index): connect + transfer \(String(format: "%.1f", figures.megabytesPerSecond(run.full))) MB/s, "
                + "transfer \(String(format: "%.1f", figures.megabytesPerSecond(run.transfer))) MB/s")
        }
        figures.clientCPUSeconds = BenchFigures.ownCPUSeconds() - clientCPUBefore
        if let before = serverCPUBefore, let after = peer.cpuSeconds { figures.serverCPUSeconds = after - before }
        figures.clientPeakRSSKiB = BenchFigures.ownPeakRSSKiB()
        figures.serverPeakRSSKiB = peer.peakRSSKiB
        return figures
    }

    /// One run: bind, connect with a new identity, `SOURCE <count>`, count to the end.
    /// `full` runs from before connect to the last byte, `transfer` from the request.
    private static func download(_ count: Int, from peer: ID52, at address: SocketAddress) async throws
        -> (full: Duration, transfer: Duration)
    {
        let endpoint = try await QUICEndpoint.bind(
            host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false)
        do {
            let clock = ContinuousClock()
            let start = clock.now
            let connection = try await endpoint.connect(to: peer, at: address)
            let stream = try await connection.openStream()
            let requested = clock.now
            try await stream.write(ByteBuffer(string: "SOURCE \(count)\n"))
            try await stream.finish()
            var received = 0
            while let chunk = try await stream.read() { received += chunk.readableBytes }
            let end = clock.now
            await connection.close()
            await endpoint.close()
            guard received == count else {
                throw CommandError(.verificationFailed, "bench peer sent \(received) bytes for SOURCE \(count)")
            }
            return (end - start, end - requested)
        } catch {
            await endpoint.close()
            throw error
        }
    }
}
