import PeerpoolCommandSupport
import ArgumentParser
import Foundation

/// `peerpool-bench pool`: what the pool adds on top of QUIC, against `peerpool listen` children.
///
/// Part 1 (`--opens`): stream opens per second on one warm connection, concurrent opens
/// against one request at a time (the reference's strategy). Part 2 (`--fanout`): one pool
/// connecting to N identities, connections per second and memory per idle connection. When
/// both run, the fan-out runs first, so that its memory baseline is a fresh process.
struct BenchPoolCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pool",
        abstract: "Stream opens per second on one connection, and fan-out to many peers with memory per connection.",
        discussion: """
            Without --opens or --fanout both parts run. Opens: two pools (default, and \
            one at a time as fastn-net does) each hold one connection to the same `peerpool \
            listen` child; --callers tasks loop getStream({"Generic":"echo"}) plus --open-work \
            for --seconds (or --open-count opens) per pool. Printed: opens/s of both, the ratio \
            (goal >= 10x), getStream latency p50/p99 and CPU per open. --rtt-ms adds latency \
            through a UDP relay in this process. Fan-out: a `peerpool listen --identities \
            N` child; one pool on one endpoint pings every identity, --in-flight at a time. \
            Printed: time and connections/s, then VmRSS per idle connection of this process \
            (goal <= 30 KiB) and of the listener. Exits 0 whether or not goals are met; non-zero \
            only if something could not run.
            """
    )

    @Flag(help: "Run the stream-opens part (default: both parts).")
    var opens = false

    @Flag(help: "Run the fan-out part (default: both parts).")
    var fanout = false

    @Option(help: "Concurrent callers opening streams on the one connection.")
    var callers = 64

    @Option(help: "Seconds each strategy opens streams for.")
    var seconds = 3.0

    @Option(help: "Opens per strategy instead of a fixed time.")
    var openCount: Int?

    @Option(help: "What each caller does with a stream: echo (write 1 byte, finish, read the echo) or bare (finish, drop).")
    var openWork: BenchPoolOpens.Work = .echo

    @Option(help: "Round-trip time in ms to add between each opens pool and the listener, through a UDP relay (default: none).")
    var rttMs: Double?

    @Option(help: "Identities the fan-out listener serves, one connection each.")
    var peers = 10_000

    @Option(help: "Fan-out connections being made at once.")
    var inFlight = 256

    @Option(help: "Seconds after which the fan-out starts no new connection (default: 60 + 25 ms per peer).")
    var fanoutTimeout: Double?

    static let opensRatioGoal = 10.0
    static let kibPerConnectionGoal = 30.0

    func validate() throws {
        guard (1...4096).contains(callers) else { throw ValidationError("--callers must be between 1 and 4096") }
        guard seconds > 0, seconds <= 600 else { throw ValidationError("--seconds must be in (0, 600]") }
        if let openCount, !(1...10_000_000).contains(openCount) {
            throw ValidationError("--open-count must be between 1 and 10000000")
        }
        guard (1...60_000).contains(peers) else { throw ValidationError("--peers must be between 1 and 60000") }
        guard (1...10_000).contains(inFlight) else { throw ValidationError("--in-flight must be between 1 and 10000") }
        if let rttMs, !(rttMs > 0 && rttMs <= 1000) { throw ValidationError("--rtt-ms must be in (0, 1000]") }
        if let fanoutTimeout, !(fanoutTimeout > 0 && fanoutTimeout <= 3600) {
            throw ValidationError("--fanout-timeout must be in (0, 3600]")
        }
    }

    func run() async throws {
        let both = !opens && !fanout
        let executable = BenchTransportOurs.peerpoolExecutable
        print("bench pool: \(ProcessInfo.processInfo.activeProcessorCount) cores, peers are `\(executable) listen` children on 127.0.0.1")
        // Fan-out first: its memory baseline is then this process before any connection, not a
        // heap the opens part left behind (freed pages it would reuse would flatter the figure).
        if fanout || both { try await runFanout(executable: executable) }
        if opens || both { try await runOpens(executable: executable) }
    }

    // MARK: Part 1

    private func runOpens(executable: String) async throws {
        let part = BenchPoolOpens(
            callers: callers, duration: .milliseconds(Int(seconds * 1000)), count: openCount, work: openWork,
            warmUpOpens: max(200, callers * 4), roundTrip: rttMs.map { .microseconds(Int($0 * 1000)) })
        print("")
        print("== stream opens on one warm connection: \(callers) callers, "
            + (openCount.map { "\($0) opens" } ?? "\(fixed(seconds, 1)) s") + " per strategy")
        print("   each iteration: \(openWork.summary)")
        if let rttMs { print("   added latency: \(fixed(rttMs, 1)) ms round trip through a UDP relay in this process (its CPU counts as ours)") }
        let listener = try await ListenerProcess.start(executable: executable, identities: 1)
        let result: (concurrent: BenchPoolOpens.Run, oneAtATime: BenchPoolOpens.Run)
        do {
            print("   listener: pid \(listener.process.pid) at \(listener.address.ipAddress ?? "?"):\(listener.address.port ?? 0)")
            result = try await part.measure(listener: listener) { print("   \($0)") }
            await listener.stop()
        } catch {
            await listener.stop(grace: .seconds(1))
            throw error
        }
        print("")
        print(pad("strategy", 16) + pad("opens", 9, right: true) + pad("seconds", 9, right: true)
            + pad("opens/s", 10, right: true) + pad("failures", 10, right: true)
            + pad("getStream p50", 15, right: true) + pad("p99", 11, right: true))
        for run in [result.concurrent, result.oneAtATime] {
            print(pad(run.strategy, 16) + pad("\(run.opens)", 9, right: true) + pad(fixed(run.elapsed.benchSeconds, 2), 9, right: true)
                + pad(fixed(run.opensPerSecond, 0), 10, right: true) + pad("\(run.failures)", 10, right: true)
                + pad(milliseconds(run.percentile(0.5)), 15, right: true) + pad(milliseconds(run.percentile(0.99)), 11, right: true))
        }
        for run in [result.concurrent, result.oneAtATime] {
            let cpu = run.cpuMicrosecondsPerOpen
            print("   \(pad(run.strategy + ":", 15)) CPU per open: ours \(fixed(cpu.ours, 0)) µs + listener \(cpu.listener.map { fixed($0, 0) } ?? "?") µs;"
                + " cores busy \(run.coresBusy.map { fixed($0, 2) } ?? "?") of \(ProcessInfo.processInfo.activeProcessorCount)")
        }
        for run in [result.concurrent, result.oneAtATime] {
            if let failure = run.firstFailure { print("   \(run.strategy): first failure: \(failure)") }
        }
        let ratio = result.oneAtATime.opensPerSecond > 0 ? result.concurrent.opensPerSecond / result.oneAtATime.opensPerSecond : 0
        print("")
        print("opens/s concurrent: \(fixed(result.concurrent.opensPerSecond, 0))")
        print("opens/s one at a time: \(fixed(result.oneAtATime.opensPerSecond, 0))")
        print("ratio concurrent / one at a time: \(fixed(ratio, 2))x   goal >= \(fixed(Self.opensRatioGoal, 0))x: \(ratio >= Self.opensRatioGoal ? "PASS" : "MISS")")
        print("getStream latency, concurrent: p50 \(milliseconds(result.concurrent.percentile(0.5))) ms, p99 \(milliseconds(result.concurrent.percentile(0.99))) ms"
            + " (\(result.concurrent.latencies.count) samples)")
        print("getStream latency, one at a time: p50 \(milliseconds(result.oneAtATime.percentile(0.5))) ms, p99 \(milliseconds(result.oneAtATime.percentile(0.99))) ms"
            + " (\(result.oneAtATime.latencies.count) samples)")
    }

    // MARK: Part 2

    private func runFanout(executable: String) async throws {
        let timeout = fanoutTimeout.map { Duration.milliseconds(Int($0 * 1000)) } ?? .seconds(60) + .milliseconds(25 * peers)
        let part = BenchPoolFanout(peers: peers, inFlight: inFlight, timeout: timeout)
        print("")
        print("== fan-out: one PeerPool on one endpoint to \(peers) identities of one listener, \(inFlight) in flight"
            + " (each: connect + Ping), no new connection after \(fixed(timeout.benchSeconds, 0)) s")
        let figures = try await part.measure(executable: executable) { print("   \($0)") }
        print("")
        print("listener: pid \(figures.listenerPID) at \(figures.listenerAddress)")
        print("connected: \(figures.connected) of \(peers) (attempted \(figures.attempted), failures \(figures.failures))")
        if let failure = figures.firstFailure { print("   first failure: \(failure)") }
        print("time to connect all: \(fixed(figures.elapsed.benchSeconds, 2)) s = \(fixed(figures.connectionsPerSecond, 0)) connections/s")
        print("connect + ping per peer: p50 \(milliseconds(BenchPoolLatencies.percentile(0.5, of: figures.latencies))) ms, "
            + "p99 \(milliseconds(BenchPoolLatencies.percentile(0.99, of: figures.latencies))) ms")
        print("CPU while connecting: ours \(fixed(figures.ourCPUSeconds, 2)) s, listener \(figures.listenerCPUSeconds.map { fixed($0, 2) } ?? "?") s")
        print("open when measured: pool \(figures.poolConnections), endpoint \(figures.endpointConnections)"
            + " (idle close after \(figures.idlePeriodsBeforeClose) ping periods)")
        let count = figures.endpointConnections
        let ours = BenchPoolFanout.Figures.perConnection(figures.ourBeforeKiB, figures.ourAfterKiB, count)
        let oursTrimmed = BenchPoolFanout.Figures.perConnection(figures.ourBeforeKiB, figures.ourAfterTrimmedKiB, count)
        let theirs = BenchPoolFanout.Figures.perConnection(figures.listenerBeforeKiB, figures.listenerAfterKiB, count)
        print("our RSS: \(mib(figures.ourBeforeKiB)) before, \(mib(figures.ourAfterKiB)) after = \(kib(ours)) per idle connection"
            + "   goal <= \(fixed(Self.kibPerConnectionGoal, 0)) KiB: \(ours.map { $0 <= Self.kibPerConnectionGoal ? "PASS" : "MISS" } ?? "?")")
        print("our RSS after malloc_trim: \(mib(figures.ourAfterTrimmedKiB)) = \(kib(oursTrimmed)) per idle connection (live heap, no free pages)")
        print("listener RSS: \(mib(figures.listenerBeforeKiB)) before, \(mib(figures.listenerAfterKiB)) after = \(kib(theirs)) per connection")
    }

    // MARK: Formatting

    private func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    private func milliseconds(_ duration: Duration?) -> String {
        duration.map { fixed($0.benchMilliseconds, 3) } ?? "?"
    }

    private func mib(_ kibibytes: Int?) -> String {
        kibibytes.map { "\(fixed(Double($0) / 1024, 1)) MiB" } ?? "?"
    }

    private func kib(_ value: Double?) -> String {
        value.map { "\(fixed($0, 1)) KiB" } ?? "?"
    }

    private func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }
}
