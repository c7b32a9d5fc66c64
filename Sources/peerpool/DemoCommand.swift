import PeerpoolCommandSupport
import ArgumentParser
import Foundation
import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolWire

#if canImport(Glibc)
import Glibc
#endif

/// The README's first command: the whole product on loopback. Local peers, a supervisor with
/// worker processes, streams flowing through it, one worker killed mid-flight, its waiters
/// failing cleanly while the other shard carries on, and the shard coming back.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run peers, a supervisor with workers, streams, and a worker crash on loopback, and explain what happens."
    )

    @Option(help: "Worker processes.")
    var workers: Int = 2

    @Option(help: "Peers (identities of one `peerpool listen` child).")
    var peers: Int = 6

    @Option(help: "Requests left waiting on the shard whose worker gets killed.")
    var waiters: Int = 200

    @Option(help: "MiB each long transfer moves.")
    var mib: Int = 64

    func validate() throws {
        guard workers >= 2 else { throw ValidationError("--workers must be at least 2: one shard is killed, the others carry on") }
        guard workers <= 64 else { throw ValidationError("--workers must be at most 64") }
        guard peers >= workers, peers <= 1_000 else { throw ValidationError("--peers must be at least --workers and at most 1000") }
        // The demo knows the supervisor has seen the kill when the waiters fail; with none, its
        // next request could still reach the dying worker.
        guard (1...5_000).contains(waiters) else { throw ValidationError("--waiters must be between 1 and 5000") }
        guard (1...4_096).contains(mib) else { throw ValidationError("--mib must be between 1 and 4096") }
    }

    func run() async throws {
        let executable = ChildProcess.currentExecutable
        let clock = ContinuousClock()
        say("1. peers", "starting `peerpool listen` with \(peers) identities (each one a peer) on 127.0.0.1")
        let listener = try await ListenerProcess.start(executable: executable, identities: peers)
        defer { Task { await listener.stop(grace: .seconds(2)) } }
        let peerAddress = HostPort.format(listener.address)
        say("", "peers listen at \(peerAddress)")

        let runtime = try DemoRuntimeDirectory()
        defer { runtime.remove() }
        var configuration = SupervisorConfiguration()
        configuration.workers = workers
        configuration.runtimeDirectory = runtime.path
        configuration.workerCommand = [executable, "worker"]
        // Errors only, from the supervisor and (through --log-level) its workers: the demo
        // explains the crash itself.
        var logger = Logger(label: "peerpool.demo", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .critical
        let supervisor = try Supervisor(configuration: configuration, identities: [SecretKey.generate()], logger: logger)
        try await supervisor.start()
        let client = try await supervisor.client()
        let pids = try await waitForWorkers(supervisor, clock: clock)
        say("2. supervisor", "pid \(getpid()), \(workers) workers: " + pids.enumerated().map { "shard \($0.offset) pid \($0.element)" }.joined(separator: ", "))
        say("", "applications connect to \(supervisor.frontendEndpoint)")

        // Streams through the supervisor to every peer.
        say("3. streams", "one echo stream to each peer, through the supervisor and the peer's shard")
        for peer in listener.identities {
            let shard = supervisor.shard(for: peer)
            let started = clock.now
            let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(peer, at: listener.address))
            let line = "hello \(peer.description.prefix(8))\n"
            try await stream.write(Array(line.utf8))
            try await stream.finish()
            let echoed = try await stream.readToEnd(limit: 1024)
            let text = String(buffer: echoed).trimmingCharacters(in: .newlines)
            say("", "\(peer.description.prefix(12))…  shard \(shard) (pid \(pids[shard]))  echoed \"\(text)\" in \(ms(clock.now - started))")
        }

        // The victim shard is the first peer's. Long transfers on every shard; waiters on the victim.
        let victim = supervisor.shard(for: listener.identities[0])
        let transfers = listener.identities.reduce(into: [Int: ID52]()) { byShard, peer in
            byShard[supervisor.shard(for: peer)] = byShard[supervisor.shard(for: peer)] ?? peer
        }
        say("4. load", "a \(mib) MiB download on each shard that has a peer (\(transfers.keys.sorted().map(String.init).joined(separator: ", "))), and \(waiters) requests waiting on shard \(victim) for peers that never answer")
        let silent = try SilentUDPSocket()
        let silentPeers = Self.peers(onShard: victim, count: waiters, of: supervisor)
        let transferTasks = transfers.map { shard, peer in
            (shard, Task { () -> Result<Int, Error> in
                do {
                    let stream = try await client.getStream(ProtocolHeader(.generic("source"), extra: "\(mib * 1_048_576)"), to: PeerAddress(peer, at: listener.address))
                    try await stream.finish()
                    var total = 0
                    while let chunk = try await stream.read() { total += chunk.readableBytes }
                    return .success(total)
                } catch { return .failure(error) }
            })
        }
        let waiterTasks = silentPeers.map { peer in
            Task { () -> (WireError.Code?, ContinuousClock.Instant) in
                do {
                    _ = try await client.getStream(ProtocolHeader(.ping), to: PeerAddress(peer, at: silent.address), timeout: .seconds(30))
                    return (nil, clock.now)
                } catch let error as WireError { return (error.code, clock.now) } catch { return ("other", clock.now) }
            }
        }
        try await waitUntilRequestsWait(supervisor, count: waiters, clock: clock)

        say("5. crash", "SIGKILL shard \(victim)'s worker (pid \(pids[victim])) with \(waiters) requests and a download in flight")
        let killedAt = clock.now
        kill(pids[victim], SIGKILL)
        var codes: [String: Int] = [:]
        var lastFailure = killedAt
        for task in waiterTasks {
            let (code, at) = await task.value
            codes[code?.rawValue ?? "succeeded", default: 0] += 1
            lastFailure = max(lastFailure, at)
        }
        // Now that the supervisor has seen the death, a request for the same shard waits for the
        // restarted worker. (One sent in the very instant of the kill could have reached the dying
        // worker, and would fail with worker_crashed like the waiters.)
        let again = try await client.getStream(ProtocolHeader(.generic("echo")), to: PeerAddress(listener.identities[0], at: listener.address))
        let backAfter = clock.now - killedAt
        try await again.finish()
        _ = try await again.readToEnd(limit: 16)
        let newPIDs = try await supervisor.workerPIDs()
        say("", "\(waiters) waiters ended: " + codes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ") + ", the last \(ms(lastFailure - killedAt)) after the kill")
        for (shard, task) in transfers.keys.sorted().map({ shard in (shard, transferTasks.first { $0.0 == shard }!.1) }) {
            switch await task.value {
            case .success(let total): say("", "shard \(shard) download: \(total / 1_048_576) MiB complete\(shard == victim ? "" : ", undisturbed")")
            case .failure(let error): say("", "shard \(shard) download: \(error)")
            }
        }
        say("6. recovery", "shard \(victim) serving again \(ms(backAfter)) after the kill, new worker pid \(newPIDs[victim].map(String.init) ?? "?")")

        let status = try await supervisor.status()
        say("7. status", "what `peerpool status` shows for this supervisor:")
        for line in StatusCommand.render(status).split(separator: "\n") { say("", String(line)) }
        await client.close()
        await supervisor.shutdown()
        print("""

            Summary: \(peers) peers served by \(workers) worker processes behind one supervisor. Killing shard \(victim)'s \
            worker failed its \(waiters) waiters with worker_crashed within \(ms(lastFailure - killedAt)); the other \
            shards' streams never noticed; shard \(victim) served again after \(ms(backAfter)).
            """)
        withExtendedLifetime(silent) {}
    }

    private func say(_ step: String, _ text: String) {
        print(step.padding(toLength: 14, withPad: " ", startingAt: 0) + text)
    }

    private func ms(_ duration: Duration) -> String {
        let value = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
        return String(format: "%.1f ms", value)
    }

    /// `count` fresh ID52s that the shard map gives to `shard`.
    static func peers(onShard shard: Int, count: Int, of supervisor: Supervisor) -> [ID52] {
        var found: [ID52] = []
        while found.count < count {
            let id = SecretKey.generate().id52
            if supervisor.shard(for: id) == shard { found.append(id) }
        }
        return found
    }

    private func waitForWorkers(_ supervisor: Supervisor, clock: ContinuousClock) async throws -> [Int32] {
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            let status = try await supervisor.status()
            if status.workers.allSatisfy({ $0.state == "running" }) { return status.workers.map { $0.pid ?? -1 } }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw ValidationError("the workers did not start within 20 s")
    }

    private func waitUntilRequestsWait(_ supervisor: Supervisor, count: Int, clock: ContinuousClock) async throws {
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            if try await supervisor.status().requests >= count { return }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw ValidationError("\(count) requests did not reach the supervisor within 20 s")
    }
}
