import ArgumentParser
import Foundation
import NIOCore
import PeerpoolCommandSupport
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC

/// `peerpool-bench iroh`: peerpool against iroh itself, in one run, on loopback inside a network
/// namespace: the same iroh sink fed by an iroh sender and by peerpool; the same iroh sender
/// feeding an iroh sink and a peerpool sink; connect + first ping for each pairing; RSS per idle
/// connection on each side. Every figure of ours is printed as a ratio of iroh's.
struct BenchIrohCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iroh",
        abstract: "peerpool against a real iroh endpoint (PyPI iroh 1.2.0 = iroh 1.4.1): throughput, connect, memory.",
        discussion: """
            Runs in a loopback-only network namespace (made with unshare --net when not already \
            in one; needs root, util-linux and iproute2), since iroh probes the LAN gateway. The \
            iroh side is Python bindings: they copy bytes into Rust one Python statement at a \
            time, so the benchmark's Python peer replaces that one copy with memmove (pass \
            --python-byte-copy to see what it costs) and moves data in 1 MiB chunks. Ratios: \
            throughput ours / iroh (>= 1: at least iroh's); connect + first ping iroh / ours \
            (>= 1: at least as fast); RSS per idle connection ours / iroh (<= 1: no more memory). \
            Needs ./deploy/setup.sh --test (iroh in .venv-test).
            """
    )

    @Option(help: "MiB each transfer moves.")
    var mib = 64

    @Option(name: .customLong("repeat"), help: "Runs of each transfer pairing; medians are reported.")
    var repeatCount = 3

    @Option(help: "Idle connections opened for the memory figures, on each side.")
    var connections = 1000

    @Option(help: "Python with the iroh package (default: .venv-test/bin/python of the package).")
    var python: String?

    @Flag(help: "Keep the iroh bindings' own per-byte copy into Rust (shows what it costs).")
    var pythonByteCopy = false

    @Flag(help: .hidden)
    var inNamespace = false

    func validate() throws {
        guard (1...4096).contains(mib) else { throw ValidationError("--mib must be between 1 and 4096") }
        guard (1...20).contains(repeatCount) else { throw ValidationError("--repeat must be between 1 and 20") }
        guard (1...10_000).contains(connections) else { throw ValidationError("--connections must be between 1 and 10000") }
    }

    func run() async throws {
        guard BenchIrohNamespace.isLoopbackOnly else {
            guard !inNamespace else { throw CommandError(.childFailed, "the new network namespace has more than lo") }
            var arguments = ["iroh", "--mib", "\(mib)", "--repeat", "\(repeatCount)", "--connections", "\(connections)", "--in-namespace"]
            if let python { arguments += ["--python", python] }
            if pythonByteCopy { arguments.append("--python-byte-copy") }
            let status = try await BenchIrohNamespace.rerunIsolated(arguments)
            if status != 0 { throw ExitCode(status) }
            return
        }
        let python = try BenchIrohPython.locate(python: python, byteCopy: pythonByteCopy)
        let bytes = mib * 1_048_576
        let timeout = Duration.seconds(60) + .milliseconds(200 * mib)
        print("bench iroh: \(mib) MiB per transfer, \(repeatCount) runs per pairing, \(connections) idle connections; loopback-only namespace")

        let iroh = try await python.serve()
        defer { Task { [process = iroh.process] in process.closeStandardInput(); _ = try? await process.terminate(grace: .seconds(2)) } }
        let listener = try await ListenerProcess.start(executable: BenchTransportOurs.peerpoolExecutable, identities: 1)
        defer { Task { await listener.stop(grace: .seconds(2)) } }
        let ourSink = PeerAddress(listener.identities[0], at: listener.address)
        print("iroh endpoint pid \(iroh.process.pid) at \(iroh.peer); peerpool listen pid \(listener.process.pid) at \(ourSink)")

        var figures = BenchIrohFigures()
        for run in 1...repeatCount {
            // Alternate the pairings so drift on a shared machine touches each alike.
            let irohToIroh = try await measureSink(pid: iroh.process.pid) { try await python.send(to: iroh.peer, bytes: bytes, timeout: timeout) }
            figures.irohToIroh.append(.init(sent: irohToIroh.result, sinkCPU: irohToIroh.cpu))
            let oursToIroh = try await measureSink(pid: iroh.process.pid) { try await Self.send(to: iroh.peer, bytes: bytes, timeout: timeout) }
            figures.oursToIroh.append(.init(sent: oursToIroh.result, sinkCPU: oursToIroh.cpu))
            let irohToOurs = try await measureSink(pid: listener.process.pid) { try await python.send(to: ourSink, bytes: bytes, timeout: timeout) }
            figures.irohToOurs.append(.init(sent: irohToOurs.result, sinkCPU: irohToOurs.cpu))
            print(String(format: "run %d: iroh→iroh %.0f MB/s, peerpool→iroh %.0f MB/s, iroh→peerpool %.0f MB/s",
                         run, irohToIroh.result.megabytesPerSecond, oursToIroh.result.megabytesPerSecond, irohToOurs.result.megabytesPerSecond))
        }

        figures.irohIdle = try await irohIdleMemory(python: python, server: iroh)
        figures.oursIdle = try await ourIdleMemory(server: iroh)
        figures.print(mib: mib)
    }

    /// Runs `body` and returns its result with the CPU seconds `pid` (the sink) used meanwhile.
    private func measureSink<T>(pid: Int32, _ body: () async throws -> T) async throws -> (result: T, cpu: Double) {
        let before = BenchUsage.process(pid).cpuSeconds
        let result = try await body()
        return (result, BenchUsage.process(pid).cpuSeconds - before)
    }

    /// peerpool as the sender: a fresh endpoint and pool, connect + ping timed, then `bytes` to
    /// the peer's sink in 1 MiB writes, timed from the request to the sink's count.
    static func send(to peer: PeerAddress, bytes: Int, timeout: Duration, viaRelay relay: String? = nil) async throws -> BenchIrohPython.Sent {
        let key = SecretKey.generate()
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false)
        let pool = relay.map {
            PeerPool(endpoint: endpoint, resolver: AddressBook(relays: [peer.id52: [$0]]), relays: .iroh(keys: [key], connectTimeout: .seconds(30)))
        } ?? PeerPool(endpoint: endpoint)
        do {
            let result = try await withBenchDeadline(timeout, "peerpool → \(peer)") {
                // As iroh's sender does at bind (online), the home relay is connected before the
                // timed connect: the figure is the QUIC handshake and first ping, alike on both sides.
                if let relay { try await pool.connectHomeRelay(relay) }
                let clock = ContinuousClock()
                let start = clock.now
                _ = try await pool.ping(peer)
                let pinged = clock.now
                let cpuBefore = BenchFigures.ownCPUSeconds()
                let began = clock.now
                let stream = try await pool.getStream(ProtocolHeader(.generic("sink")), to: peer)
                let chunk = ByteBuffer(repeating: 0, count: 1 << 20)
                var left = bytes
                while left > 0 {
                    try await stream.write(left >= chunk.readableBytes ? chunk : chunk.getSlice(at: 0, length: left)!)
                    left -= min(left, chunk.readableBytes)
                }
                try await stream.finish()
                let answer = String(buffer: try await stream.readToEnd(limit: 64)).trimmingCharacters(in: .whitespacesAndNewlines)
                guard Int(answer) == bytes else {
                    throw CommandError(.verificationFailed, "the sink at \(peer) counted \(answer), not \(bytes)")
                }
                let ended = clock.now
                return BenchIrohPython.Sent(
                    connect_ms: (pinged - start).benchSeconds * 1000, connect_and_ping_ms: (pinged - start).benchSeconds * 1000,
                    seconds: (ended - began).benchSeconds, bytes: bytes, cpu_s: BenchFigures.ownCPUSeconds() - cpuBefore)
            }
            await pool.shutdown(gracePeriod: .seconds(1))
            await endpoint.close()
            return result
        } catch {
            await pool.shutdown(gracePeriod: .zero)
            await endpoint.close()
            throw error
        }
    }

    /// iroh → iroh: one iroh endpoint holds `connections` connections to the iroh server.
    private func irohIdleMemory(python: BenchIrohPython, server: (process: ChildProcess, peer: PeerAddress)) async throws -> BenchIrohFigures.Idle {
        let serverBefore = BenchPoolMemory.residentKiB(pid: server.process.pid) ?? 0
        let held = try await python.hold(to: server.peer, count: connections)
        let serverAfter = BenchPoolMemory.residentKiB(pid: server.process.pid) ?? 0
        held.process.closeStandardInput()
        _ = try? await held.process.wait(timeout: .seconds(30))
        return .init(connections: held.connections, clientKiB: held.afterKiB - held.beforeKiB, serverKiB: serverAfter - serverBefore)
    }

    /// peerpool → iroh: one endpoint with `connections` identities, one connection each.
    private func ourIdleMemory(server: (process: ChildProcess, peer: PeerAddress)) async throws -> BenchIrohFigures.Idle {
        let keys = (0..<connections).map { _ in SecretKey.generate() }
        let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: keys, acceptIncoming: false)
        BenchPoolMemory.trimHeap()
        let ourBefore = BenchPoolMemory.residentKiB() ?? 0
        let serverBefore = BenchPoolMemory.residentKiB(pid: server.process.pid) ?? 0
        let address = server.peer.socketAddress!
        var held: [QUICConnection] = []
        for batch in stride(from: 0, to: keys.count, by: 50) {
            let connected = try await withThrowingTaskGroup(of: QUICConnection.self) { group in
                for key in keys[batch..<min(batch + 50, keys.count)] {
                    group.addTask { try await endpoint.connect(to: server.peer.id52, at: address, as: key.id52) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            held += connected
        }
        BenchPoolMemory.trimHeap()
        let ourAfter = BenchPoolMemory.residentKiB() ?? 0
        let serverAfter = BenchPoolMemory.residentKiB(pid: server.process.pid) ?? 0
        let count = held.count
        held.removeAll()
        await endpoint.close()
        return .init(connections: count, clientKiB: ourAfter - ourBefore, serverKiB: serverAfter - serverBefore)
    }
}

extension BenchIrohPython.Sent {
    var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / seconds / 1e6 : 0 }
    /// Sender CPU seconds per GiB moved.
    var cpuPerGiB: Double { cpu_s / (Double(bytes) / Double(1 << 30)) }
}
