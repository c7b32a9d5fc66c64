import PeerpoolCommandSupport
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor

/// Part 2 of `bench supervisor`: what the process hop adds to one `getStream` on a warm
/// connection.
///
/// One task opens `{"Generic":"echo"}` streams one after another, through the pool and through
/// the supervisor in alternating blocks (so drift on the shared machine hits both alike). Only
/// the `getStream` call is timed; each stream is then finished and read to its end, untimed,
/// and the whole iteration is timed separately for context. CPU is summed per side and process
/// (this one, the workers, the listener): with one call at a time, it is all on the critical path.
struct BenchSupervisorLatency {
    var samples: Int
    static let blockSize = 100
    static let warmUp = 200

    struct Side: Sendable {
        /// `getStream` call times, sorted.
        var opens: [Duration] = []
        /// getStream + finish + read to the end, sorted.
        var iterations: [Duration] = []

        /// CPU and context switches over all measured iterations.
        var usage = BenchUsage()

        func p(_ fraction: Double) -> Duration { BenchPoolLatencies.percentile(fraction, of: opens) ?? .zero }
        func iteration(_ fraction: Double) -> Duration { BenchPoolLatencies.percentile(fraction, of: iterations) ?? .zero }
    }

    struct Figures: Sendable {
        var pool = Side()
        var supervisor = Side()
    }

    private static let header = ProtocolHeader(.generic("echo"))

    func measure(
        pool: BenchSide<PeerPool>, client: BenchSide<SupervisorClient>, peer: PeerAddress, workerPIDs: [Int32], listener: ChildProcess
    ) async throws -> Figures {
        let limit = Duration.seconds(60) + .milliseconds(samples * 2)
        return try await withBenchDeadline(limit, "\(samples) sequential getStream calls per side") {
            _ = try await Self.block(Self.warmUp, pool, peer)
            _ = try await Self.block(Self.warmUp, client, peer)
            var figures = Figures()
            var left = samples
            var poolFirst = true
            while left > 0 {
                let count = min(left, Self.blockSize)
                for side in poolFirst ? [0, 1] : [1, 0] {
                    let ((opens, iterations), used) = try await BenchUsage.measuring(workers: workerPIDs, listener: listener.pid) {
                        side == 0
                            ? try await Self.block(count, pool, peer)
                            : try await Self.block(count, client, peer)
                    }
                    if side == 0 {
                        figures.pool.opens += opens
                        figures.pool.iterations += iterations
                        figures.pool.usage = figures.pool.usage + used
                    } else {
                        figures.supervisor.opens += opens
                        figures.supervisor.iterations += iterations
                        figures.supervisor.usage = figures.supervisor.usage + used
                    }
                }
                poolFirst.toggle()
                left -= count
            }
            figures.pool.opens.sort()
            figures.pool.iterations.sort()
            figures.supervisor.opens.sort()
            figures.supervisor.iterations.sort()
            return figures
        }
    }

    private static func block<Provider: StreamProvider>(
        _ count: Int, _ side: BenchSide<Provider>, _ peer: PeerAddress
    ) async throws -> (opens: [Duration], iterations: [Duration]) {
        let clock = ContinuousClock()
        var opens: [Duration] = []
        var iterations: [Duration] = []
        opens.reserveCapacity(count)
        iterations.reserveCapacity(count)
        for _ in 0..<count {
            let start = clock.now
            let stream = try await side.open(header, to: peer)
            let opened = clock.now
            try await stream.finish()
            let rest = try await stream.readToEnd(limit: 16)
            let end = clock.now
            guard rest.readableBytes == 0 else {
                throw CommandError(.verificationFailed, "\(side.name): echo sent \(rest.readableBytes) bytes for none")
            }
            opens.append(opened - start)
            iterations.append(end - start)
        }
        return (opens, iterations)
    }

    /// `count` sequential STATUS requests: a round trip between this process's client and the
    /// supervisor through every layer of ours but no worker. Sorted.
    static func statusRoundTrips(_ client: SupervisorClient, count: Int) async throws -> [Duration] {
        let clock = ContinuousClock()
        var trips: [Duration] = []
        trips.reserveCapacity(count)
        for index in 0..<(count + 50) {
            let start = clock.now
            _ = try await client.status()
            if index >= 50 { trips.append(clock.now - start) }  // the first 50 warm up
        }
        return trips.sorted()
    }

    /// What one `ID52(parsing:)` (which checks the key is a curve point) costs in this process,
    /// for a key not seen before and for one seen before (validated keys are remembered): the
    /// supervisor and the worker parse the OPEN's ID52 strings, so this is part of what the hop
    /// adds. Medians of 5 rounds of 50 parses.
    static func id52ParseCost() -> (new: Duration, seen: Duration) {
        let clock = ContinuousClock()
        var fresh: [Duration] = []
        var seen: [Duration] = []
        for _ in 0..<5 {
            let texts = (0..<50).map { _ in SecretKey.generate().id52.description }
            for round in 0..<2 {
                let start = clock.now
                var valid = 0
                for text in texts where (try? ID52(parsing: text)) != nil { valid += 1 }
                let each = (clock.now - start) / max(1, valid)
                if round == 0 { fresh.append(each) } else { seen.append(each) }
            }
        }
        return (benchMedian(fresh), benchMedian(seen))
    }
}
