import PeerpoolCommandSupport
import Foundation
import NIOCore
import PeerpoolPool

/// Part 1 of `bench supervisor`: one stream's throughput through the supervisor (client →
/// supervisor → worker → QUIC, and back), as a fraction of the in-process pool's to the same
/// peer, in the same run.
///
/// Download: `{"Generic":"source"}` with the byte count as extra line, finish, read to the end.
/// Upload: `{"Generic":"sink"}`, write the bytes in 1 MiB writes, finish, read the decimal count
/// the sink answers (checked). Each run times from the `getStream` call to the last byte (the
/// open on a warm connection is noise next to the transfer). Runs alternate pool and supervisor,
/// and which of them goes first, so drift on the shared machine hits both alike.
struct BenchSupervisorThroughput {
    var bytes: Int
    var runs: Int

    /// One side's runs in one direction: MB/s per run, and CPU summed over the runs.
    struct Side: Sendable {
        var rates: [Double] = []
        var usage = BenchUsage()

        var median: Double { BenchText.median(rates) }
    }

    struct Figures: Sendable {
        var download = (pool: Side(), supervisor: Side())
        var upload = (pool: Side(), supervisor: Side())
    }

    enum Direction: String {
        case download, upload
    }

    private static let writeBlock = ByteBuffer(repeating: UInt8(ascii: "b"), count: 1 << 20)

    func measure(
        pool: BenchSide<PeerPool>, supervisor: BenchSupervisorHarness, peer: PeerAddress, listener: ChildProcess,
        log: (String) -> Void
    ) async throws -> Figures {
        let client = supervisor.side
        // Warm-up: both connections made, both code paths touched once.
        for direction in [Direction.download, .upload] {
            _ = try await transfer(direction, 1 << 20, pool, peer)
            _ = try await transfer(direction, 1 << 20, client, peer)
        }
        let workerPIDs = try await supervisor.supervisor.workerPIDs().compactMap { $0 }
        var figures = Figures()
        for run in 1...runs {
            for direction in [Direction.download, .upload] {
                var pair = direction == .download ? figures.download : figures.upload
                let poolFirst = run % 2 == 1
                for side in poolFirst ? [0, 1] : [1, 0] {
                    let (elapsed, used) = try await BenchUsage.measuring(workers: workerPIDs, listener: listener.pid) {
                        side == 0
                            ? try await transfer(direction, bytes, pool, peer)
                            : try await transfer(direction, bytes, client, peer)
                    }
                    let rate = Double(bytes) / elapsed.benchSeconds / 1e6
                    if side == 0 {
                        pair.pool.rates.append(rate)
                        pair.pool.usage = pair.pool.usage + used
                    } else {
                        pair.supervisor.rates.append(rate)
                        pair.supervisor.usage = pair.supervisor.usage + used
                    }
                    log("run \(run) \(BenchText.pad(direction.rawValue, 8)) \(BenchText.pad(side == 0 ? "pool" : "supervisor", 10)) "
                        + "\(BenchText.pad(BenchText.fixed(rate, 1), 7, right: true)) MB/s   CPU s: this process \(BenchText.fixed(used.ours.cpuSeconds, 2))"
                        + (side == 1 ? " + workers \(BenchText.fixed(used.workers.cpuSeconds, 2))" : "")
                        + " + listener \(BenchText.fixed(used.listener.cpuSeconds, 2))")
                }
                if direction == .download { figures.download = pair } else { figures.upload = pair }
            }
        }
        return figures
    }

    /// One transfer of `count` bytes; returns the time from `getStream` to the last byte (or
    /// the sink's answer).
    private func transfer<Provider: StreamProvider>(
        _ direction: Direction, _ count: Int, _ side: BenchSide<Provider>, _ peer: PeerAddress
    ) async throws -> Duration {
        let limit = Duration.seconds(60) + .milliseconds(count / 10_000)
        return try await withBenchDeadline(limit, "\(side.name) \(direction.rawValue) of \(count) bytes") {
            switch direction {
            case .download: try await Self.download(count, side, peer)
            case .upload: try await Self.upload(count, side, peer)
            }
        }
    }

    private static func download<Provider: StreamProvider>(_ count: Int, _ side: BenchSide<Provider>, _ peer: PeerAddress) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let stream = try await side.open(ProtocolHeader(.generic("source"), extra: "\(count)"), to: peer)
        try await stream.finish()
        var received = 0
        while let chunk = try await stream.read() { received += chunk.readableBytes }
        let elapsed = clock.now - start
        guard received == count else {
            throw CommandError(.verificationFailed, "\(side.name): source sent \(received) bytes for \(count)")
        }
        return elapsed
    }

    private static func upload<Provider: StreamProvider>(_ count: Int, _ side: BenchSide<Provider>, _ peer: PeerAddress) async throws -> Duration {
        let clock = ContinuousClock()
        let start = clock.now
        let stream = try await side.open(ProtocolHeader(.generic("sink")), to: peer)
        var remaining = count
        while remaining > 0 {
            let length = min(remaining, writeBlock.readableBytes)
            try await stream.write(writeBlock.getSlice(at: writeBlock.readerIndex, length: length)!)
            remaining -= length
        }
        try await stream.finish()
        let answer = try await stream.readToEnd(limit: 64)
        let elapsed = clock.now - start
        let text = String(buffer: answer).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Int(text) == count else {
            throw CommandError(.verificationFailed, "\(side.name): sink answered \"\(text.prefix(40))\" for \(count) bytes")
        }
        return elapsed
    }
}
