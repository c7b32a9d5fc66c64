import PeerpoolCommandSupport
import ArgumentParser
import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import Synchronization

/// Part 1 of `bench pool`: stream opens per second on one warm connection.
///
/// Two pools, each on an endpoint and identity of its own, dial the same `peerpool listen`
/// child: one with the default strategy (concurrent opens), one opening a single stream at a time (`BenchTurn`), the
/// reference's strategy. Both get the same load: `callers` tasks that each loop
/// `getStream({"Generic":"echo"})` and then `work`, until the run's time or count is used up.
/// Only `getStream` is timed for the latency figures; opens per second count whole iterations.
///
/// On loopback both strategies are CPU-bound (the one-at-a-time run keeps more than a core busy
/// with wake-ups), so the ratio there says little about a network; `roundTrip` puts a
/// `BenchPoolRelay` between each pool and the listener to add latency.
struct BenchPoolOpens {
    /// What a caller does with each stream `getStream` returned.
    enum Work: String, CaseIterable, ExpressibleByArgument, Sendable {
        /// Write 1 byte, finish, read the echoed byte and the end of the stream: a request that
        /// is really served.
        case echo
        /// Finish and drop the stream: measures the open (header + `ack`) alone.
        case bare

        var summary: String {
            switch self {
            case .echo: "getStream + write 1 byte + finish + read the echo to its end"
            case .bare: "getStream + finish + drop"
            }
        }
    }

    /// One strategy's figures.
    struct Run: Sendable {
        let strategy: String
        /// Iterations that completed (stream acknowledged, and `work` done).
        let opens: Int
        let failures: Int
        let firstFailure: String?
        /// From the first caller's start to the last caller's end.
        let elapsed: Duration
        /// `getStream` latencies, sorted (a uniform sample when there were very many).
        let latencies: [Duration]
        /// CPU seconds this process and the listener spent during the run.
        let ourCPUSeconds: Double
        let listenerCPUSeconds: Double?

        /// CPU microseconds per completed iteration, ours and the listener's.
        var cpuMicrosecondsPerOpen: (ours: Double, listener: Double?) {
            let opens = Double(max(1, self.opens))
            return (ourCPUSeconds * 1e6 / opens, listenerCPUSeconds.map { $0 * 1e6 / opens })
        }

        /// Cores both processes kept busy on average.
        var coresBusy: Double? {
            guard let listenerCPUSeconds, elapsed.benchSeconds > 0 else { return nil }
            return (ourCPUSeconds + listenerCPUSeconds) / elapsed.benchSeconds
        }

        var opensPerSecond: Double {
            let seconds = elapsed.benchSeconds
            return seconds > 0 ? Double(opens) / seconds : 0
        }

        func percentile(_ fraction: Double) -> Duration? {
            BenchPoolLatencies.percentile(fraction, of: latencies)
        }
    }

    var callers: Int
    /// How long each strategy runs, unless `count` is set.
    var duration: Duration
    /// Opens each strategy makes (instead of running for `duration`).
    var count: Int?
    var work: Work
    /// Opens per strategy before measuring, on the same connection.
    var warmUpOpens: Int
    /// Network latency to add with a `BenchPoolRelay` per pool; nil: straight to the listener.
    var roundTrip: Duration?

    static let header = ProtocolHeader(.generic("echo"))
    /// Latency samples kept per run, over all callers (16 bytes each).
    static let sampleCapacity = 262_144

    /// Measures the concurrent strategy, then one request at a time, against `listener`'s first
    /// identity. Throws only when a strategy could not open a single stream.
    func measure(listener: ListenerProcess, log: (String) -> Void) async throws -> (concurrent: Run, oneAtATime: Run) {
        guard let roundTrip else { return try await measure(listener: listener, relay: nil, log: log) }
        // The relays get a thread of their own, so that they do not queue behind our endpoints.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let runs = try await measure(listener: listener, relay: (roundTrip, group), log: log)
            try? await group.shutdownGracefully()
            return runs
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    private func measure(
        listener: ListenerProcess, relay: (roundTrip: Duration, group: any EventLoopGroup)?, log: (String) -> Void
    ) async throws -> (concurrent: Run, oneAtATime: Run) {
        let concurrent = try await Contender.start(oneRequestAtATime: false, listener: listener, relay: relay)
        let oneAtATime: Contender
        do {
            oneAtATime = try await Contender.start(oneRequestAtATime: true, listener: listener, relay: relay)
        } catch {
            await concurrent.stop()
            throw error
        }
        let peer = concurrent.peer
        do {
            for contender in [concurrent, oneAtATime] {
                let warm = try await run(contender, listener: listener.process, budget: Budget(opens: warmUpOpens))
                guard warm.opens > 0 else {
                    throw CommandError(.childFailed, "\(contender.strategy): no stream opened during warm-up: \(warm.firstFailure ?? "no attempt")")
                }
            }
            log("warm: both pools hold one connection to \(peer.id52)"
                + (roundTrip.map { " through a relay adding \(String(format: "%.1f", $0.benchMilliseconds)) ms round trip" } ?? ""))
            var runs: [Run] = []
            for contender in [concurrent, oneAtATime] {
                let run = try await run(contender, listener: listener.process, budget: count.map { Budget(opens: $0) } ?? Budget(duration: duration))
                guard run.opens > 0 else {
                    throw CommandError(.childFailed, "\(contender.strategy): no stream opened: \(run.firstFailure ?? "no attempt")")
                }
                runs.append(run)
            }
            await concurrent.stop()
            await oneAtATime.stop()
            return (runs[0], runs[1])
        } catch {
            await concurrent.stop()
            await oneAtATime.stop()
            throw error
        }
    }

    /// One pool on an endpoint of its own, and the listener as it reaches it (through a relay
    /// of its own when latency is added).
    private struct Contender: Sendable {
        let strategy: String
        let endpoint: QUICEndpoint
        let pool: PeerPool
        let peer: PeerAddress
        let relay: BenchPoolRelay?
        /// fastn-net's strategy: one stream open at a time (nil: concurrent opens).
        let turn: BenchTurn?

        static func start(
            oneRequestAtATime: Bool, listener: ListenerProcess, relay: (roundTrip: Duration, group: any EventLoopGroup)?
        ) async throws -> Contender {
            let endpoint = try await QUICEndpoint.bind(
                host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false)
            var target = listener.address
            var started: BenchPoolRelay?
            if let relay {
                do {
                    let relay = try await BenchPoolRelay.start(
                        client: endpoint.localAddress, target: listener.address, roundTrip: relay.roundTrip, group: relay.group)
                    started = relay
                    target = relay.address
                } catch {
                    await endpoint.close()
                    throw error
                }
            }
            return Contender(
                strategy: oneRequestAtATime ? "one at a time" : "concurrent", endpoint: endpoint,
                pool: PeerPool(endpoint: endpoint),
                peer: PeerAddress(listener.identities[0], at: target), relay: started,
                turn: oneRequestAtATime ? BenchTurn() : nil)
        }

        func stop() async {
            await pool.shutdown(gracePeriod: .seconds(1))
            await endpoint.close()
            await relay?.close()
        }
    }

    /// Opens `callers` loops on `contender`'s pool until `budget` is used up. Bounded by a
    /// deadline well past the budget, in case the connection stalls.
    private func run(_ contender: Contender, listener: ChildProcess, budget: Budget) async throws -> Run {
        let (callers, work, pool, peer, turn) = (self.callers, self.work, contender.pool, contender.peer, contender.turn)
        let capacity = max(1, Self.sampleCapacity / callers)
        let limit = budget.limit
        let ourCPUBefore = BenchFigures.ownCPUSeconds()
        let listenerCPUBefore = listener.cpuSeconds
        let clock = ContinuousClock()
        let start = clock.now
        let tallies = try await withBenchDeadline(limit, "\(contender.strategy) stream opens") {
            await withTaskGroup(of: Tally.self) { group in
                for index in 0..<callers {
                    group.addTask {
                        await Self.caller(
                            seed: UInt64(index + 1), pool: pool, peer: peer, turn: turn, work: work, budget: budget, capacity: capacity)
                    }
                }
                var all: [Tally] = []
                for await tally in group { all.append(tally) }
                return all
            }
        }
        let elapsed = clock.now - start
        let listenerCPU = listenerCPUBefore.flatMap { before in listener.cpuSeconds.map { $0 - before } }
        return Run(
            strategy: contender.strategy, opens: tallies.reduce(0) { $0 + $1.opens },
            failures: tallies.reduce(0) { $0 + $1.failures }, firstFailure: tallies.lazy.compactMap(\.firstFailure).first,
            elapsed: elapsed, latencies: BenchPoolLatencies.merged(tallies.map(\.latencies)),
            ourCPUSeconds: BenchFigures.ownCPUSeconds() - ourCPUBefore, listenerCPUSeconds: listenerCPU)
    }

    /// What one caller counted.
    private struct Tally: Sendable {
        var opens = 0
        var failures = 0
        var firstFailure: String?
        var latencies: BenchPoolLatencies
    }

    private static func caller(
        seed: UInt64, pool: PeerPool, peer: PeerAddress, turn: BenchTurn?, work: Work, budget: Budget, capacity: Int
    ) async -> Tally {
        var tally = Tally(latencies: BenchPoolLatencies(capacity: capacity, seed: seed))
        let clock = ContinuousClock()
        while !Task.isCancelled, budget.take() {
            let start = clock.now
            do {
                let stream: PeerStream
                if let turn {
                    await turn.take()
                    do { stream = try await pool.getStream(header, to: peer) } catch { await turn.end(); throw error }
                    await turn.end()
                } else {
                    stream = try await pool.getStream(header, to: peer)
                }
                tally.latencies.record(clock.now - start)
                try await use(stream, work)
                tally.opens += 1
            } catch {
                tally.failures += 1
                if tally.firstFailure == nil { tally.firstFailure = "\(error)" }
            }
        }
        return tally
    }

    private static func use(_ stream: PeerStream, _ work: Work) async throws {
        switch work {
        case .echo:
            try await stream.write(CollectionOfOne(UInt8(ascii: "x")))
            try await stream.finish()
            let back = try await stream.readToEnd(limit: 16)
            guard back.readableBytes == 1 else {
                throw CommandError(.verificationFailed, "echo sent back \(back.readableBytes) bytes for 1")
            }
        case .bare:
            try await stream.finish()
        }
    }

    /// The work left in a run: a count of opens shared by all callers, or a deadline.
    private final class Budget: Sendable {
        private let deadline: ContinuousClock.Instant?
        private let remaining: Atomic<Int>
        /// The run's deadline: the budget plus a generous margin for a slow machine.
        let limit: Duration

        /// `opens` iterations in all, however long they take (up to `limit`).
        init(opens: Int) {
            deadline = nil
            remaining = Atomic(opens)
            limit = .seconds(60) + .milliseconds(opens)
        }

        /// As many iterations as start within `duration`.
        init(duration: Duration) {
            deadline = ContinuousClock.now + duration
            remaining = Atomic(Int.max)
            limit = duration + .seconds(60)
        }

        /// Claims one iteration; false once the budget is used up.
        func take() -> Bool {
            if let deadline, ContinuousClock.now >= deadline { return false }
            return remaining.subtract(1, ordering: .relaxed).newValue >= 0
        }
    }
}
