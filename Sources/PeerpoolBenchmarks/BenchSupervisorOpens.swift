import PeerpoolCommandSupport
import NIOCore
import PeerpoolPool
import Synchronization

/// Part 3 of `bench supervisor`: stream opens per second and CPU per open, through supervisors
/// with 1 and with 2 workers (and the in-process pool, for reference).
///
/// `callers` tasks loop `getStream({"Generic":"echo"})` + write 1 byte + finish + read the echo
/// to its end, caller i always to `peers[i]` (the command spreads them over both shards). CPU is counted per process: this one (getrusage: the callers, the client's
/// thread and the embedded supervisor's routing), each worker (/proc/<pid>/stat) and the
/// listener child.
struct BenchSupervisorOpens {
    var callers: Int
    var count: Int

    struct Run: Sendable {
        let label: String
        let opens: Int
        let failures: Int
        let firstFailure: String?
        let elapsed: Duration
        /// CPU and context switches of this process, the workers (none for the pool) and the
        /// listener over the run.
        let usage: BenchUsage

        var opensPerSecond: Double { elapsed.benchSeconds > 0 ? Double(opens) / elapsed.benchSeconds : 0 }

        /// CPU seconds per 10,000 completed opens.
        func cpuPer10k(_ part: BenchUsage.Part) -> Double {
            part.cpuSeconds * 10_000 / Double(max(1, opens))
        }

        /// Context switches per completed open.
        func switchesPerOpen(_ part: BenchUsage.Part) -> Double {
            Double(part.switches) / Double(max(1, opens))
        }
    }

    private static let header = ProtocolHeader(.generic("echo"))
    private static let payload = ByteBuffer(string: "x")

    /// Warm-up (every caller's peer connected), then `count` opens, measured.
    func measure<Provider: StreamProvider>(
        _ label: String, _ side: BenchSide<Provider>, peers: [PeerAddress], workerPIDs: [Int32], listener: ChildProcess
    ) async throws -> Run {
        let warm = try await run(label, side, peers: peers, workerPIDs: workerPIDs, listener: listener, count: max(callers * 4, 256))
        guard warm.failures == 0 else {
            throw CommandError(.childFailed, "\(label): \(warm.failures) of \(warm.opens + warm.failures) warm-up opens failed: \(warm.firstFailure ?? "?")")
        }
        return try await run(label, side, peers: peers, workerPIDs: workerPIDs, listener: listener, count: count)
    }

    private func run<Provider: StreamProvider>(
        _ label: String, _ side: BenchSide<Provider>, peers: [PeerAddress], workerPIDs: [Int32], listener: ChildProcess, count: Int
    ) async throws -> Run {
        let budget = Budget(count)
        let callers = self.callers
        let clock = ContinuousClock()
        let ((tallies, elapsed), usage) = try await BenchUsage.measuring(workers: workerPIDs, listener: listener.pid) {
            let start = clock.now
            let tallies = try await withBenchDeadline(.seconds(120) + .milliseconds(count), "\(label): \(count) stream opens") {
                await withTaskGroup(of: Tally.self) { group in
                    for index in 0..<callers {
                        let peer = peers[index % peers.count]  // one per caller
                        group.addTask { await Self.caller(side, peer: peer, budget: budget) }
                    }
                    var all: [Tally] = []
                    for await tally in group { all.append(tally) }
                    return all
                }
            }
            return (tallies, clock.now - start)
        }
        return Run(
            label: label, opens: tallies.reduce(0) { $0 + $1.opens }, failures: tallies.reduce(0) { $0 + $1.failures },
            firstFailure: tallies.lazy.compactMap(\.firstFailure).first, elapsed: elapsed,
            usage: usage)
    }

    private struct Tally: Sendable {
        var opens = 0
        var failures = 0
        var firstFailure: String?
    }

    private static func caller<Provider: StreamProvider>(_ side: BenchSide<Provider>, peer: PeerAddress, budget: Budget) async -> Tally {
        var tally = Tally()
        while !Task.isCancelled, budget.take() {
            do {
                let stream = try await side.open(header, to: peer)
                try await stream.write(payload)
                try await stream.finish()
                let back = try await stream.readToEnd(limit: 16)
                guard back.readableBytes == 1 else {
                    throw CommandError(.verificationFailed, "echo sent back \(back.readableBytes) bytes for 1")
                }
                tally.opens += 1
            } catch {
                tally.failures += 1
                if tally.firstFailure == nil { tally.firstFailure = "\(error)" }
            }
        }
        return tally
    }

    /// Opens left in a run, shared by its callers.
    private final class Budget: Sendable {
        private let remaining: Atomic<Int>

        init(_ count: Int) {
            remaining = Atomic(count)
        }

        func take() -> Bool {
            remaining.subtract(1, ordering: .relaxed).newValue >= 0
        }
    }
}
