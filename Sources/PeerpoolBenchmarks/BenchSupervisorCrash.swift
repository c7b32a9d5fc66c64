import PeerpoolCommandSupport
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Part 4 of `bench supervisor`: what a worker crash costs the client.
///
/// Each trial leaves `waiters` requests in flight on one shard (Ping to fresh ID52s that the
/// shard map gives that shard, at a UDP port that never answers, so they wait on their QUIC
/// handshakes), SIGKILLs the shard's worker, and at once asks that shard for a stream to a
/// real peer. Measured from just before `kill()`: when the last waiter's failure reached its
/// task, and when the real peer's stream was open (through the restarted worker, which has to
/// connect to the peer first). A request that reaches the dying worker fails with
/// `worker_crashed` and is issued again; the retries are counted.
struct BenchSupervisorCrash {
    var waiters: Int
    var trials: Int

    struct Trial: Sendable {
        let killedPID: Int32
        let lastFailure: Duration
        let serving: Duration
        /// Requests for the real peer that failed (with `worker_crashed`) before one got through.
        let retries: Int
        /// How the waiters ended, by error code ("succeeded" if one did).
        let codes: [String: Int]
    }

    func measure(
        _ harness: BenchSupervisorHarness, realPeer: PeerAddress, silent: SilentUDPSocket, log: (String) -> Void
    ) async throws -> [Trial] {
        let supervisor = harness.supervisor
        let shard = supervisor.shard(for: realPeer.id52)
        let silentPeers = Self.identities(onShard: shard, count: waiters, of: supervisor)
            .map { PeerAddress($0, at: silent.address) }
        var results: [Trial] = []
        for index in 1...trials {
            let trial = try await withBenchDeadline(.seconds(60), "crash trial \(index)") {
                try await Self.trial(harness, shard: shard, realPeer: realPeer, silentPeers: silentPeers)
            }
            results.append(trial)
            log("trial \(index): killed pid \(trial.killedPID) (shard \(shard)); waiters ended "
                + trial.codes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
                + "; last failure after \(BenchText.milliseconds(trial.lastFailure)); shard serving again after "
                + "\(BenchText.milliseconds(trial.serving))" + (trial.retries > 0 ? " (\(trial.retries) request(s) failed first)" : ""))
            // Let the restarted worker settle before the next kill.
            try await Task.sleep(for: .milliseconds(200))
        }
        return results
    }

    private static func trial(
        _ harness: BenchSupervisorHarness, shard: Int, realPeer: PeerAddress, silentPeers: [PeerAddress]
    ) async throws -> Trial {
        let (supervisor, client) = (harness.supervisor, harness.client)
        let pids = try await BenchSupervisorHarness.waitForWorkers(supervisor)
        let victim = pids[shard]
        // The shard serves, and its worker holds a connection to the real peer.
        try await echo(client, realPeer)

        let clock = ContinuousClock()
        let waiterTasks = silentPeers.map { peer in
            Task { () -> (String, ContinuousClock.Instant) in
                do {
                    _ = try await client.getStream(ProtocolHeader(.ping), to: peer, timeout: .seconds(30))
                    return ("succeeded", clock.now)
                } catch let error as WireError {
                    return (error.code.rawValue, clock.now)
                } catch {
                    return ("\(type(of: error))", clock.now)
                }
            }
        }
        do {
            try await waitUntilWaiting(supervisor, shard: shard, count: silentPeers.count)
        } catch {
            for task in waiterTasks { task.cancel() }
            throw error
        }

        let killedAt = clock.now
        guard kill(victim, SIGKILL) == 0 else {
            for task in waiterTasks { task.cancel() }
            throw CommandError(.childFailed, "kill(\(victim), SIGKILL): \(String(cString: strerror(errno)))")
        }
        var retries = 0
        while true {
            do {
                try await echo(client, realPeer)
                break
            } catch let error as WireError where error.code == .workerCrashed && retries < 100 {
                retries += 1
            }
        }
        let serving = clock.now - killedAt

        var codes: [String: Int] = [:]
        var last = killedAt
        for task in waiterTasks {
            let (code, at) = await task.value
            codes[code, default: 0] += 1
            last = max(last, at)
        }
        return Trial(killedPID: victim, lastFailure: last - killedAt, serving: serving, retries: retries, codes: codes)
    }

    /// One `{"Generic":"echo"}` stream: open, 1 byte, finish, read it back.
    private static func echo(_ client: SupervisorClient, _ peer: PeerAddress) async throws {
        let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: peer, timeout: .seconds(10))
        try await stream.write([UInt8(ascii: "x")])
        try await stream.finish()
        let back = try await stream.readToEnd(limit: 16)
        guard back.readableBytes == 1 else {
            throw CommandError(.verificationFailed, "echo through the restarted worker sent back \(back.readableBytes) bytes for 1")
        }
    }

    /// Until the supervisor holds `count` requests, and the shard's worker reported them in a
    /// heartbeat (or a second passed: the supervisor fails what it routed to a dead worker
    /// either way).
    private static func waitUntilWaiting(_ supervisor: Supervisor, shard: Int, count: Int) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while try await supervisor.status().requests < count {
            guard clock.now < deadline else {
                throw CommandError(.timedOut, "\(count) requests did not reach the supervisor within 20 s")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let heartbeatDeadline = clock.now + .seconds(1)
        while clock.now < heartbeatDeadline {
            let status = try await supervisor.status()
            if shard < status.workers.count, status.workers[shard].requests >= count { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// `count` fresh ID52s that the shard map gives to `shard`.
    static func identities(onShard shard: Int, count: Int, of supervisor: Supervisor) -> [ID52] {
        var found: [ID52] = []
        while found.count < count {
            let id = SecretKey.generate().id52
            if supervisor.shard(for: id) == shard { found.append(id) }
        }
        return found
    }
}
