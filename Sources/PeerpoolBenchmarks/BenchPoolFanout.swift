import PeerpoolCommandSupport
import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC

/// Part 2 of `bench pool`: one pool on one endpoint connects to every identity of a
/// `peerpool listen --identities N` child, and the idle connections' memory is measured.
///
/// Each connection is made by `pool.ping(peer)` (connect, then one `Ping` stream), at most
/// `inFlight` at once. Resident memory is read before (after a warm-up whose connections are
/// closed again) and after, with every connection still open and idle.
struct BenchPoolFanout {
    var peers: Int
    var inFlight: Int
    /// No new connection starts after this; each started one is bounded by the pool's connect
    /// and ack timeouts.
    var timeout: Duration
    /// Peers pinged (and then disconnected) before the baseline, to load code and fill caches.
    var warmUpPeers = 16

    struct Figures: Sendable {
        var listenerPID: Int32 = 0
        var listenerAddress = ""
        var attempted = 0
        var connected = 0
        var failures = 0
        var firstFailure: String?
        /// From the first connect to the last answer.
        var elapsed: Duration = .zero
        /// Connect + ping per peer, sorted.
        var latencies: [Duration] = []
        var ourCPUSeconds = 0.0
        var listenerCPUSeconds: Double?
        /// Connections held when memory was measured.
        var poolConnections = 0
        var endpointConnections = 0
        /// Our VmRSS, KiB: baseline (heap trimmed), after with the heap as it was, after trimmed.
        var ourBeforeKiB: Int?
        var ourAfterKiB: Int?
        var ourAfterTrimmedKiB: Int?
        var listenerBeforeKiB: Int?
        var listenerAfterKiB: Int?
        var idlePeriodsBeforeClose = 0

        var connectionsPerSecond: Double {
            let seconds = elapsed.benchSeconds
            return seconds > 0 ? Double(connected) / seconds : 0
        }

        /// KiB per connection between `before` and `after`, over `count` connections.
        static func perConnection(_ before: Int?, _ after: Int?, _ count: Int) -> Double? {
            guard let before, let after, count > 0 else { return nil }
            return Double(after - before) / Double(count)
        }
    }

    func measure(executable: String, log: (String) -> Void) async throws -> Figures {
        log("fan-out: starting `peerpool listen --identities \(peers)` (generating \(peers) identities)")
        let listener = try await ListenerProcess.start(executable: executable, identities: peers)
        let endpoint: QUICEndpoint
        do {
            var quic = QUICConfiguration()
            quic.maxConnections = max(quic.maxConnections, peers + warmUpPeers + 64)
            endpoint = try await QUICEndpoint.bind(
                host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false, configuration: quic)
        } catch {
            await listener.stop()
            throw error
        }
        var configuration = PoolConfiguration()
        configuration.maxConnections = max(configuration.maxConnections, peers + 64)
        // The pool closes a connection after idlePeriodsBeforeClose pings without use. With
        // the default (one minute), the first connections of a slow fan-out would close before
        // the last ones open; keep them all until the measurement is done.
        let periods = Int(((timeout + configuration.connectTimeout + configuration.ackTimeout + .seconds(30)) / configuration.pingInterval).rounded(.up))
        configuration.idlePeriodsBeforeClose = max(configuration.idlePeriodsBeforeClose, periods)
        let pool = PeerPool(endpoint: endpoint, configuration: configuration)
        do {
            var figures = try await measure(pool: pool, endpoint: endpoint, listener: listener, log: log)
            figures.idlePeriodsBeforeClose = configuration.idlePeriodsBeforeClose
            log("fan-out: closing \(figures.endpointConnections) connections")
            await endpoint.close()
            await pool.shutdown(gracePeriod: .zero)
            await listener.stop()
            return figures
        } catch {
            await endpoint.close()
            await pool.shutdown(gracePeriod: .zero)
            await listener.stop()
            throw error
        }
    }

    private func measure(pool: PeerPool, endpoint: QUICEndpoint, listener: ListenerProcess, log: (String) -> Void) async throws -> Figures {
        var figures = Figures()
        figures.listenerPID = listener.process.pid
        figures.listenerAddress = "\(listener.address.ipAddress ?? "?"):\(listener.address.port ?? 0)"
        let peers = listener.identities.map { PeerAddress($0, at: listener.address) }

        try await warmUp(endpoint: endpoint, peers: Array(peers.prefix(warmUpPeers)))
        BenchPoolMemory.trimHeap()
        figures.ourBeforeKiB = BenchPoolMemory.residentKiB()
        figures.listenerBeforeKiB = BenchPoolMemory.residentKiB(pid: listener.process.pid)
        log("fan-out: baseline with 0 connections: ours \(kib(figures.ourBeforeKiB)), listener \(kib(figures.listenerBeforeKiB))")

        let cpuBefore = BenchFigures.ownCPUSeconds()
        let listenerCPUBefore = listener.process.cpuSeconds
        let clock = ContinuousClock()
        let start = clock.now
        let tally = await connectAll(pool: pool, peers: peers, deadline: start + timeout, log: log)
        figures.elapsed = clock.now - start
        figures.ourCPUSeconds = BenchFigures.ownCPUSeconds() - cpuBefore
        if let before = listenerCPUBefore, let after = listener.process.cpuSeconds { figures.listenerCPUSeconds = after - before }
        figures.attempted = tally.attempted
        figures.connected = tally.latencies.count
        figures.failures = tally.failures
        figures.firstFailure = tally.firstFailure
        figures.latencies = tally.latencies.sorted()
        guard figures.connected > 0 else {
            throw CommandError(.childFailed, "no connection to `peerpool listen` succeeded: \(tally.firstFailure ?? "none attempted")")
        }

        // Let the last handshakes' acknowledgements and stream closes settle, then measure with
        // every connection open and idle.
        try await Task.sleep(for: .seconds(1))
        figures.poolConnections = await pool.connectionCount
        figures.endpointConnections = await endpoint.connectionCount
        figures.ourAfterKiB = BenchPoolMemory.residentKiB()
        figures.listenerAfterKiB = BenchPoolMemory.residentKiB(pid: listener.process.pid)
        BenchPoolMemory.trimHeap()
        figures.ourAfterTrimmedKiB = BenchPoolMemory.residentKiB()
        return figures
    }

    /// Pings the first few peers through a pool of its own on the same endpoint, then closes
    /// those connections and waits (5 s at most) until the endpoint holds none.
    private func warmUp(endpoint: QUICEndpoint, peers: [PeerAddress]) async throws {
        let pool = PeerPool(endpoint: endpoint)
        let failures = await withTaskGroup(of: Bool.self) { group in
            for peer in peers { group.addTask { (try? await pool.ping(peer)) != nil } }
            var failures = 0
            for await ok in group where !ok { failures += 1 }
            return failures
        }
        await pool.shutdown(gracePeriod: .zero)
        guard failures < peers.count else {
            throw CommandError(.childFailed, "warm-up: none of \(peers.count) pings to `peerpool listen` succeeded")
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while await endpoint.connectionCount > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private struct ConnectTally {
        var attempted = 0
        var failures = 0
        var firstFailure: String?
        var latencies: [Duration] = []
    }

    private enum Outcome: Sendable {
        case connected(Duration)
        case failed(String)
    }

    /// Pings every peer, `inFlight` at a time; none starts after `deadline`.
    private func connectAll(pool: PeerPool, peers: [PeerAddress], deadline: ContinuousClock.Instant, log: (String) -> Void) async -> ConnectTally {
        let inFlight = self.inFlight
        let clock = ContinuousClock()
        let start = clock.now
        let progressEvery = max(1000, peers.count / 10)
        return await withTaskGroup(of: Outcome.self) { group in
            var tally = ConnectTally()
            tally.latencies.reserveCapacity(peers.count)
            var next = 0
            var running = 0
            while true {
                while running < inFlight, next < peers.count, clock.now < deadline {
                    let peer = peers[next]
                    next += 1
                    running += 1
                    group.addTask {
                        let began = ContinuousClock.now
                        do {
                            _ = try await pool.ping(peer)
                            return .connected(ContinuousClock.now - began)
                        } catch {
                            return .failed("\(error)")
                        }
                    }
                }
                guard let outcome = await group.next() else { break }
                running -= 1
                switch outcome {
                case .connected(let latency):
                    tally.latencies.append(latency)
                    if tally.latencies.count % progressEvery == 0 {
                        log("fan-out: \(tally.latencies.count) connected after \(String(format: "%.1f", (clock.now - start).benchSeconds)) s")
                    }
                case .failed(let why):
                    tally.failures += 1
                    if tally.firstFailure == nil { tally.firstFailure = why }
                }
            }
            tally.attempted = next
            return tally
        }
    }

    private func kib(_ value: Int?) -> String {
        value.map { String(format: "%.1f MiB", Double($0) / 1024) } ?? "?"
    }
}
