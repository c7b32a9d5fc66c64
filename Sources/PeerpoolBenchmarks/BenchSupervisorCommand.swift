import PeerpoolCommandSupport
import ArgumentParser
import Foundation
import PeerpoolPool
import PeerpoolSupervisor

/// `peerpool-bench supervisor`: what the process hop costs, against `peerpool listen` children,
/// with a `Supervisor` embedded in this process (workers are `<this executable> worker`).
///
/// Everything is measured side by side in one run, because the machine is shared and noisy:
/// only ratios and differences are stable. Parts: throughput through the supervisor as a ratio
/// of the in-process pool; getStream latency the hop adds; opens per second and CPU per open
/// with 1 and 2 workers; crash timings (waiters failed, shard serving again).
struct BenchSupervisorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervisor",
        abstract: "Throughput, latency, opens/s and crash timings through an embedded supervisor, against the in-process pool.",
        discussion: """
            Peers are one `peerpool listen --identities 16` child on 127.0.0.1. The supervisor \
            runs in this process with a private runtime directory under /tmp; its workers are \
            `<this executable> worker`. Parts (all by default, or one with --only): \
            throughput (--mib per transfer, --runs runs alternating pool and supervisor, download \
            from {"Generic":"source"} and upload to {"Generic":"sink"}; goals: download 0.8 and \
            upload 0.9 of the pool, CPU per GiB at most 1.4x the pool's); latency (--samples \
            sequential getStream calls per side on a warm connection; goal: p50 added <= 3 bare \
            ZeroMQ round trips, timed in the same run); opens (--callers tasks, --opens opens of \
            getStream + 1 byte echo, in process and through 1 and then 2 workers; goals: opens/s \
            with 1 worker >= 0.75 of the pool's, CPU per open <= 1.4x the pool's, and with 2 \
            workers <= 1.1x that with 1); crash (--waiters requests waiting on one shard, its worker SIGKILLed, \
            --crashes times; goals: all waiters failed within 50 ms, the shard serving again \
            within 300 ms). Exits 0 whether or not goals are met; non-zero only if a part could \
            not run.
            """
    )

    enum Part: String, CaseIterable, ExpressibleByArgument {
        case throughput, latency, opens, crash
    }

    @Option(help: "MiB per throughput transfer.")
    var mib = 256

    @Option(help: "Throughput runs per side and direction.")
    var runs = 5

    @Option(help: "Sequential getStream calls per side for the latency part.")
    var samples = 2000

    @Option(help: "Stream opens per configuration in the opens part.")
    var opens = 20_000

    @Option(help: "Concurrent callers in the opens part.")
    var callers = 64

    @Option(help: "Requests waiting on the killed shard in the crash part.")
    var waiters = 200

    @Option(help: "Worker kills in the crash part.")
    var crashes = 5

    @Option(help: "Flow-control window in bytes, both directions, for the throughput part's supervisor and client (default: the library's, 262144).")
    var window: Int?

    @Option(help: "Run only this part: throughput, latency, opens or crash.")
    var only: Part?

    static let peerCount = 16
    static let throughputBar = 0.6
    static let throughputGoal = 0.8
    static let uploadGoal = 0.9
    /// The hop's added getStream latency, in bare ZeroMQ round trips measured in the same run.
    static let addedLatencyGoalRoundTrips = 3.0
    /// CPU per GiB moved, all processes, through the supervisor against the in-process pool.
    static let cpuPerGiBGoal = 1.4
    static let cpuRatioGoal = 1.1
    /// Opens through one worker against the in-process pool: rate at least, CPU per open at most.
    static let opensRateGoal = 0.75
    static let opensCPUGoal = 1.4
    static let waitersFailedGoalMilliseconds = 50.0
    static let servingAgainGoalMilliseconds = 300.0

    func validate() throws {
        guard (1...65_536).contains(mib) else { throw ValidationError("--mib must be between 1 and 65536") }
        guard (1...100).contains(runs) else { throw ValidationError("--runs must be between 1 and 100") }
        guard (1...1_000_000).contains(samples) else { throw ValidationError("--samples must be between 1 and 1000000") }
        guard (1...10_000_000).contains(opens) else { throw ValidationError("--opens must be between 1 and 10000000") }
        guard (1...4096).contains(callers) else { throw ValidationError("--callers must be between 1 and 4096") }
        guard (1...5000).contains(waiters) else { throw ValidationError("--waiters must be between 1 and 5000") }
        guard (1...100).contains(crashes) else { throw ValidationError("--crashes must be between 1 and 100") }
        if let window, !(1...16_777_216).contains(window) { throw ValidationError("--window must be between 1 and 16777216") }
    }

    func run() async throws {
        let executable = BenchTransportOurs.peerpoolExecutable
        let parts = only.map { [$0] } ?? Part.allCases
        let started = ContinuousClock.now
        print("bench supervisor: \(ProcessInfo.processInfo.activeProcessorCount) cores; peers: one `\(executable) listen "
            + "--identities \(Self.peerCount)` child on 127.0.0.1; supervisor embedded in this process (pid \(getpid())), "
            + "workers `\(executable) worker`")
        let listener = try await ListenerProcess.start(executable: executable, identities: Self.peerCount)
        let peers = listener.identities.map { PeerAddress($0, at: listener.address) }
        print("listener: pid \(listener.process.pid) at \(HostPort.format(listener.address))")
        let inProcess: BenchInProcessPool
        do {
            inProcess = try await BenchInProcessPool.start()
        } catch {
            await listener.stop(grace: .seconds(1))
            throw error
        }
        let pool = inProcess.side
        var report = BenchSupervisorReport()
        var failures: [String] = []
        for part in parts {
            do {
                switch part {
                case .throughput: try await runThroughput(pool: pool, peer: peers[0], listener: listener, report: &report)
                case .latency: try await runLatency(pool: pool, peer: peers[0], listener: listener, report: &report)
                case .opens: try await runOpens(pool: pool, peers: peers, listener: listener, report: &report)
                case .crash: try await runCrash(peers: peers, report: &report)
                }
            } catch {
                print("   \(part.rawValue) failed: \(error)")
                report.failed(part.rawValue, "could not run: see above")
                failures.append("\(part.rawValue): \(error)")
            }
        }
        await inProcess.stop()
        await listener.stop()

        print("")
        print("== summary (\(BenchText.fixed((ContinuousClock.now - started).benchSeconds, 0)) s)")
        for line in report.lines { print(line) }
        if !failures.isEmpty {
            throw CommandError(.childFailed, "parts that could not run: " + failures.joined(separator: "; "))
        }
    }

    // MARK: Parts

    private func runThroughput(pool: BenchSide<PeerPool>, peer: PeerAddress, listener: ListenerProcess, report: inout BenchSupervisorReport) async throws {
        print("")
        print("== 1. throughput of one stream: \(mib) MiB per transfer, \(runs) runs per side and direction, pool and supervisor alternating")
        let harness = try await BenchSupervisorHarness.start(workers: 2, executable: BenchTransportOurs.peerpoolExecutable, window: window)
        let figures: BenchSupervisorThroughput.Figures
        do {
            print("   supervisor: 2 workers; the peer is on shard \(harness.supervisor.shard(for: peer.id52)); flow-control window "
                + "\(harness.client.configuration.receiveWindow) bytes each way, DATA frames of at most \(harness.client.configuration.maxDataFrame) bytes")
            let part = BenchSupervisorThroughput(bytes: mib << 20, runs: runs)
            figures = try await part.measure(pool: pool, supervisor: harness, peer: peer, listener: listener.process) { print("   \($0)") }
            await harness.stop()
        } catch {
            await harness.stop()
            throw error
        }
        let gib = Double(mib * runs) / 1024
        for (name, pair, goal) in [("download", figures.download, Self.throughputGoal), ("upload", figures.upload, Self.uploadGoal)] {
            let ratio = pair.pool.median > 0 ? pair.supervisor.median / pair.pool.median : 0
            print("   \(name): pool median \(BenchText.fixed(pair.pool.median, 1)) MB/s, supervisor median \(BenchText.fixed(pair.supervisor.median, 1)) MB/s,"
                + " ratio \(BenchText.fixed(ratio, 2)) (bar \(Self.throughputBar), goal \(goal))")
            let (p, s) = (pair.pool.usage, pair.supervisor.usage)
            print("   \(name) CPU s per GiB: pool: this process \(BenchText.fixed(p.ours.cpuSeconds / gib, 2)) + listener \(BenchText.fixed(p.listener.cpuSeconds / gib, 2));"
                + " supervisor: this process \(BenchText.fixed(s.ours.cpuSeconds / gib, 2)) + workers \(BenchText.fixed(s.workers.cpuSeconds / gib, 2))"
                + " + listener \(BenchText.fixed(s.listener.cpuSeconds / gib, 2))")
            report.atLeast("throughput \(name), supervisor / pool", ratio, bar: Self.throughputBar, goal: goal)
            // The stable figure on a shared machine: CPU per GiB, all processes, does not swing
            // with what else runs the way a wall-clock ratio does.
            let cpuRatio = p.total.cpuSeconds > 0 ? s.total.cpuSeconds / p.total.cpuSeconds : 0
            report.atMost("\(name) CPU s per GiB, all processes, supervisor / pool", cpuRatio, goal: Self.cpuPerGiBGoal)
        }
    }

    private func runLatency(pool: BenchSide<PeerPool>, peer: PeerAddress, listener: ListenerProcess, report: inout BenchSupervisorReport) async throws {
        print("")
        print("== 2. getStream latency on a warm connection: \(samples) sequential calls per side, {\"Generic\":\"echo\"}, blocks of \(BenchSupervisorLatency.blockSize) alternating")
        let harness = try await BenchSupervisorHarness.start(workers: 2, executable: BenchTransportOurs.peerpoolExecutable)
        let figures: BenchSupervisorLatency.Figures
        let statusTrips: [Duration]
        do {
            let pids = try await BenchSupervisorHarness.waitForWorkers(harness.supervisor)
            figures = try await BenchSupervisorLatency(samples: samples).measure(
                pool: pool, client: harness.side, peer: peer, workerPIDs: pids, listener: listener.process)
            statusTrips = try await BenchSupervisorLatency.statusRoundTrips(harness.client, count: max(500, samples / 2))
            await harness.stop()
        } catch {
            await harness.stop()
            throw error
        }
        let us = BenchText.microseconds
        for (name, side) in [("pool", figures.pool), ("supervisor", figures.supervisor)] {
            print("   \(BenchText.pad(name, 10)) getStream p50 \(us(side.p(0.5))), p99 \(us(side.p(0.99)));"
                + " whole iteration (getStream + finish + read to end) p50 \(us(side.iteration(0.5))), p99 \(us(side.iteration(0.99)))")
        }
        for (name, side) in [("pool", figures.pool), ("supervisor", figures.supervisor)] {
            let count = Double(max(1, side.iterations.count))
            let cpu = { (part: BenchUsage.Part) in BenchText.fixed(part.cpuSeconds * 1e6 / count, 0) }
            let switches = { (part: BenchUsage.Part) in BenchText.fixed(Double(part.switches) / count, 1) }
            let usage = side.usage
            print("   \(BenchText.pad(name, 10)) per iteration: CPU µs this process \(cpu(usage.ours))"
                + (name == "pool" ? "" : " + workers \(cpu(usage.workers))") + " + listener \(cpu(usage.listener)) = \(cpu(usage.total));"
                + " context switches \(switches(usage.ours))" + (name == "pool" ? "" : " + \(switches(usage.workers))")
                + " + \(switches(usage.listener)) = \(switches(usage.total))")
        }
        let parse = BenchSupervisorLatency.id52ParseCost()
        print("   for comparison, one ID52(parsing:) here: \(us(parse.new)) for a key not seen before (curve-point check), \(us(parse.seen)) for one seen before")
        let addedP50 = figures.supervisor.p(0.5) - figures.pool.p(0.5)
        let addedP99 = figures.supervisor.p(0.99) - figures.pool.p(0.99)
        print("   added by the supervisor: p50 \(us(addedP50)), p99 \(us(addedP99)); whole iteration p50 "
            + us(figures.supervisor.iteration(0.5) - figures.pool.iteration(0.5)))
        // The anchor, in the same run: a bare libzmq DEALER <-> ROUTER round trip between two
        // processes, 12-byte header + 64-byte body echoed.
        let bare = try await BenchZMQRoundTrip.measure(count: max(1000, samples))
        let hops = addedP50.benchSeconds / max(bare.p(0.5).benchSeconds, 1e-9)
        print("   anchor: bare ZeroMQ round trip over ipc:// (12 + 64 bytes echoed) p50 \(us(bare.p(0.5))), p99 \(us(bare.p(0.99)));"
            + " added p50 = \(BenchText.fixed(hops, 1)) bare round trips")
        // Where the added time goes: one client ↔ supervisor round trip through our code (STATUS,
        // answered by the supervisor itself), against the bare one. getStream through the
        // supervisor needs two such process hops (client ↔ supervisor ↔ worker) plus the
        // worker's hand-off between its reactor and its event loop.
        let status = BenchPoolLatencies.percentile(0.5, of: statusTrips) ?? .zero
        let statusHops = status.benchSeconds / max(bare.p(0.5).benchSeconds, 1e-9)
        print("   client ↔ supervisor round trip (STATUS, answered by the supervisor) p50 \(us(status)) = \(BenchText.fixed(statusHops, 1)) bare round trips")
        report.atMost("getStream p50 added, in bare ZeroMQ round trips", hops, digits: 1, goal: Self.addedLatencyGoalRoundTrips)
        report.info("client ↔ supervisor STATUS round trip p50, in bare round trips", BenchText.fixed(statusHops, 1))
        report.info("bare ZeroMQ round trip p50 / p99", "\(us(bare.p(0.5))) / \(us(bare.p(0.99)))")
        report.info("getStream p50 added (supervisor - pool)", us(addedP50))
        report.info("getStream p99 added (supervisor - pool)", us(addedP99))
        report.info("getStream p50 / p99: pool", "\(us(figures.pool.p(0.5))) / \(us(figures.pool.p(0.99)))")
        report.info("getStream p50 / p99: supervisor", "\(us(figures.supervisor.p(0.5))) / \(us(figures.supervisor.p(0.99)))")
    }

    private func runOpens(pool: BenchSide<PeerPool>, peers: [PeerAddress], listener: ListenerProcess, report: inout BenchSupervisorReport) async throws {
        print("")
        print("== 3. stream opens: \(callers) callers over \(peers.count) peers, \(opens) opens per configuration,"
            + " each getStream + write 1 byte + finish + read the echo to its end")
        // Callers alternate between the two shards' peers (by the 2-worker shard map), so both
        // workers get half the callers whatever the split of the listener's identities; every
        // configuration gets the same assignment.
        let shardMap = ShardMap(workerCount: 2)
        let byShard = (0..<2).map { shard in peers.filter { shardMap.worker(for: $0.id52) == shard } }
        guard byShard.allSatisfy({ !$0.isEmpty }) else {
            throw CommandError(.childFailed, "all \(peers.count) listener identities fall on one of 2 shards; run again")
        }
        let assigned = (0..<callers).map { (caller: Int) -> PeerAddress in
            let shard: [PeerAddress] = byShard[caller % 2]
            return shard[(caller / 2) % shard.count]
        }
        print("   peers on shard 0 / 1 of 2: \(byShard[0].count) / \(byShard[1].count); callers alternate between the shards")
        let part = BenchSupervisorOpens(callers: callers, count: opens)
        var runs: [BenchSupervisorOpens.Run] = []
        let reference = try await part.measure("pool (in process)", pool, peers: assigned, workerPIDs: [], listener: listener.process)
        runs.append(reference)
        for workers in [1, 2] {
            let harness = try await BenchSupervisorHarness.start(workers: workers, executable: BenchTransportOurs.peerpoolExecutable)
            do {
                let pids = try await BenchSupervisorHarness.waitForWorkers(harness.supervisor)
                print("   supervisor with \(workers) worker\(workers == 1 ? "" : "s"): pids \(pids.map(String.init).joined(separator: ", "))")
                runs.append(try await part.measure("supervisor, \(workers) worker\(workers == 1 ? "" : "s")", harness.side, peers: assigned, workerPIDs: pids, listener: listener.process))
                await harness.stop()
            } catch {
                await harness.stop()
                throw error
            }
        }
        let cpu = { (value: Double) in BenchText.fixed(value, 2) }
        let switches = { (value: Double) in BenchText.fixed(value, 1) }
        print("")
        print("   " + BenchText.pad("configuration", 22) + BenchText.pad("opens/s", 9, right: true) + BenchText.pad("failures", 10, right: true)
            + "   CPU s per 10,000 opens: this process + workers + listener = total;  context switches per open, same order")
        for run in runs {
            let usage = run.usage
            print("   " + BenchText.pad(run.label, 22) + BenchText.pad(BenchText.fixed(run.opensPerSecond, 0), 9, right: true)
                + BenchText.pad("\(run.failures)", 10, right: true)
                + "   \(cpu(run.cpuPer10k(usage.ours))) + \(cpu(run.cpuPer10k(usage.workers))) + \(cpu(run.cpuPer10k(usage.listener)))"
                + " = \(cpu(run.cpuPer10k(usage.total)));  \(switches(run.switchesPerOpen(usage.ours))) + \(switches(run.switchesPerOpen(usage.workers)))"
                + " + \(switches(run.switchesPerOpen(usage.listener))) = \(switches(run.switchesPerOpen(usage.total)))")
            if let failure = run.firstFailure { print("      first failure: \(failure)") }
        }
        let one = runs[1], two = runs[2]
        let ratio = two.cpuPer10k(two.usage.total) / max(1e-9, one.cpuPer10k(one.usage.total))
        print("   CPU per open, 2 workers / 1 worker: \(BenchText.fixed(ratio, 2)) (goal <= \(Self.cpuRatioGoal));"
            + " supervisor (1 worker) / pool CPU per open: \(BenchText.fixed(one.cpuPer10k(one.usage.total) / max(1e-9, reference.cpuPer10k(reference.usage.total)), 2))")
        for run in runs {
            report.info("opens/s, \(run.label)", BenchText.fixed(run.opensPerSecond, 0))
        }
        for run in runs {
            report.info("CPU s per 10k opens, \(run.label)", cpu(run.cpuPer10k(run.usage.total)))
        }
        report.atLeast("opens/s, 1 worker / pool", one.opensPerSecond / max(1e-9, reference.opensPerSecond), bar: nil, goal: Self.opensRateGoal)
        report.atMost("CPU per open, 1 worker / pool", one.cpuPer10k(one.usage.total) / max(1e-9, reference.cpuPer10k(reference.usage.total)), goal: Self.opensCPUGoal)
        report.atMost("CPU per open, 2 workers / 1 worker", ratio, goal: Self.cpuRatioGoal)
    }

    private func runCrash(peers: [PeerAddress], report: inout BenchSupervisorReport) async throws {
        print("")
        print("== 4. crash: \(waiters) requests waiting on one shard, its worker SIGKILLed, \(crashes) times")
        let harness = try await BenchSupervisorHarness.start(workers: 2, executable: BenchTransportOurs.peerpoolExecutable)
        let trials: [BenchSupervisorCrash.Trial]
        do {
            let silent = try SilentUDPSocket()
            let realPeer = peers[0]
            print("   victim: shard \(harness.supervisor.shard(for: realPeer.id52)), the shard of peer \(realPeer.id52.description.prefix(12))…;"
                + " waiters ping fresh ID52s of that shard at \(HostPort.format(silent.address)), which never answers")
            trials = try await BenchSupervisorCrash(waiters: waiters, trials: crashes).measure(harness, realPeer: realPeer, silent: silent) { print("   \($0)") }
            withExtendedLifetime(silent) {}
            await harness.stop()
        } catch {
            await harness.stop()
            throw error
        }
        let failed = trials.map { $0.lastFailure.benchMilliseconds }
        let serving = trials.map { $0.serving.benchMilliseconds }
        let unexpected = trials.reduce(0) { $0 + $1.codes.filter { $0.key != "worker_crashed" }.values.reduce(0, +) }
        print("   kill -> last waiter failed: median \(BenchText.fixed(BenchText.median(failed), 1)) ms, max \(BenchText.fixed(failed.max() ?? 0, 1)) ms"
            + " (goal <= \(BenchText.fixed(Self.waitersFailedGoalMilliseconds, 0)) ms)")
        print("   kill -> shard serving again: median \(BenchText.fixed(BenchText.median(serving), 1)) ms, max \(BenchText.fixed(serving.max() ?? 0, 1)) ms"
            + " (goal <= \(BenchText.fixed(Self.servingAgainGoalMilliseconds, 0)) ms)")
        if unexpected > 0 { print("   \(unexpected) waiter(s) ended with something other than worker_crashed (see the trials above)") }
        report.atMost("crash: kill -> all waiters failed, median", BenchText.median(failed), digits: 1, unit: " ms", goal: Self.waitersFailedGoalMilliseconds)
        report.atMost("crash: kill -> all waiters failed, max", failed.max() ?? 0, digits: 1, unit: " ms", goal: Self.waitersFailedGoalMilliseconds)
        report.atMost("crash: kill -> shard serving, median", BenchText.median(serving), digits: 1, unit: " ms", goal: Self.servingAgainGoalMilliseconds)
        report.atMost("crash: kill -> shard serving, max", serving.max() ?? 0, digits: 1, unit: " ms", goal: Self.servingAgainGoalMilliseconds)
        if unexpected > 0 { report.info("crash: waiters not failed with worker_crashed", "\(unexpected)") }
    }
}
