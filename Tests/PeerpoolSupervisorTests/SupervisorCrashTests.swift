import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Workers that die, hang or cannot start, in an embedded supervisor with real worker processes:
/// what the requests and streams they held get, that the other shards never notice, and that
/// the shard serves again.
@Suite(.serialized, .timeLimit(.minutes(4)))
struct SupervisorCrashTests {
    static let echo = ProtocolHeader(.generic("echo"))

    @Test func sigkillWorker_with500RequestsInFlight_failsExactlyItsRequestsWithWorkerCrashed_thenTheShardServesAgain() async throws {
        let workers = 2
        let victim = 0
        let survivor = 1
        let waitersPerShard = 250
        // One real peer on the victim's shard (to show it serves again), four on the other.
        let keys = try SupervisorFixture.keys(on: [victim, survivor, survivor, survivor, survivor], workers: workers)
        let survivorPeers = keys.dropFirst().map(\.id52)
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        let silentIDs = try SupervisorFixture.id52s(onShard: victim, count: waitersPerShard, workers: workers)

        // 250 streams over 4 peers from one client: above the default fair share per peer
        // (max_streams_per_client_per_peer, 50), which this test is not about.
        // Connect and request timeouts far above the time 250 opens take to reach the worker
        // while the rest of the suite loads both cores: none may end before the kill.
        try await EmbeddedSupervisor.with(workers: workers, {
            $0.maxStreamsPerClientPerPeer = 1_000
            $0.pool.connectTimeout = .seconds(200)
        }) { embedded in
            let supervisor = embedded.supervisor
            let client = embedded.client
            let pids = try await embedded.runningPIDs()

            // The other shard: 250 echo streams, each open and echoing before the kill and
            // echoing again after it.
            let killed = Gate()
            defer { killed.open() }
            let echoing = Counter()
            let failedEarly = Counter()
            let survivorTasks = (0..<waitersPerShard).map { index in
                let peer = listener.peer(survivorPeers[index % survivorPeers.count])
                return Task { () -> String in
                    do {
                        let stream = try await client.getStream(Self.echo, to: peer)
                        let first = try await stream.echoLine("before \(index)\n")
                        guard first == "before \(index)\n" else { return "wrong echo \(first.debugDescription)" }
                        echoing.increment()
                        await killed.wait()
                        let second = try await stream.echoLine("after \(index)\n")
                        try await stream.finish()
                        let rest = try await stream.readToEnd(limit: 1024)
                        guard second == "after \(index)\n", rest.readableBytes == 0 else { return "wrong echo \(second.debugDescription)" }
                        return "ok"
                    } catch let error as WireError {
                        failedEarly.increment()
                        return "\(error.code): \(error.message)"
                    } catch {
                        failedEarly.increment()
                        return "\(error)"
                    }
                }
            }
            // The victim's shard: 250 requests to peers that never answer (connect timeout 200 s,
            // request timeout 220 s), so all are in flight in its worker when it dies.
            let victimTasks = silentIDs.map { id in
                Task { await outcome { _ = try await client.getStream(ProtocolHeader(.ping), to: silent.peer(id), timeout: .seconds(220)) } }
            }

            try await SupervisorFixture.waitUntil("\(waitersPerShard) echo streams open on shard \(survivor) (\(echoing.value) so far)") {
                echoing.value + failedEarly.value == waitersPerShard
            }
            if failedEarly.value > 0 {
                killed.open()
                let outcomes = try await values(of: survivorTasks, within: .seconds(60), "the other shard's streams")
                Issue.record("streams on shard \(survivor) failed before the kill: \(tally(outcomes))")
                return
            }
            var seen = "no STATUS yet"
            do {
                try await SupervisorFixture.waitUntil("shard \(victim)'s worker to hold \(waitersPerShard) requests (last seen: \(seen))") {
                    let status = try await supervisor.status()
                    seen = "\(status.workers[victim]); supervisor requests \(status.requests), streams \(status.streams)"
                    return status.workers[victim].requests == waitersPerShard && status.requests >= waitersPerShard
                }
            } catch {
                // Say how the victim's requests ended, if they did.
                var ended: [String] = []
                for task in victimTasks.prefix(3) { ended.append("\(await task.value)") }
                Issue.record("\(error); the first victim requests ended: \(ended)")
                throw error
            }
            try await SupervisorFixture.waitUntil("shard \(survivor)'s worker to report \(waitersPerShard) streams") {
                try await supervisor.status().workers[survivor].streams == waitersPerShard
            }

            let killedWorker = ProcessIdentity(pids[victim])
            kill(pids[victim], SIGKILL)

            let victimOutcomes = try await values(of: victimTasks, within: SupervisorFixture.deadline, "the victim shard's requests")
            let codes = tally(victimOutcomes.map(\.code))
            #expect(codes == ["worker_crashed": waitersPerShard], "\(codes)")
            let unnamed = victimOutcomes.filter { !($0.message.contains("shard \(victim)") && $0.message.contains("SIGKILL")) }
            #expect(unnamed.isEmpty, "messages should name the shard and the signal: \(unnamed.prefix(3))")

            killed.open()
            let survivorOutcomes = try await values(of: survivorTasks, within: .seconds(60), "the other shard's streams")
            #expect(tally(survivorOutcomes) == ["ok": waitersPerShard], "\(tally(survivorOutcomes))")

            // The shard serves again, from a new process; the other shard's worker never changed.
            let replacement = try await embedded.replacementPID(shard: victim, replacing: pids[victim])
            #expect(try await client.echo("back\n", to: listener.peer(keys[0].id52)) == "back\n")
            let status = try await supervisor.status()
            #expect(status.workers[victim].pid == replacement)
            #expect(status.workers[victim].restarts == 1)
            #expect(status.workers[survivor].pid == pids[survivor])
            #expect(status.workers[survivor].restarts == 0)
            #expect(!killedWorker.isAlive)
        }
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    @Test func sigstopWorker_isKilledAsHung_itsRequestsAndStreamsFailWithWorkerHung_thenTheShardServesAgain() async throws {
        let workers = 2
        let victim = 1
        let keys = try SupervisorFixture.keys(on: [victim, 1 - victim], workers: workers)
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        let silentIDs = try SupervisorFixture.id52s(onShard: victim, count: 20, workers: workers)

        try await EmbeddedSupervisor.with(workers: workers, {
            $0.heartbeatInterval = .milliseconds(100)
            $0.hangTimeout = .seconds(3)
        }) { embedded in
            let supervisor = embedded.supervisor
            let client = embedded.client
            let pids = try await embedded.runningPIDs()
            // Should the test fail before the supervisor kills it, the stopped worker still dies
            // at teardown (SIGKILL works on a stopped process).

            let stream = try await client.getStream(Self.echo, to: listener.peer(keys[0].id52))
            #expect(try await stream.echoLine("before\n") == "before\n")
            let other = try await client.getStream(Self.echo, to: listener.peer(keys[1].id52))
            let waiting = silentIDs.map { id in
                Task { await outcome { _ = try await client.getStream(ProtocolHeader(.ping), to: silent.peer(id), timeout: .seconds(60)) } }
            }
            try await SupervisorFixture.waitUntil("shard \(victim)'s worker to hold 20 requests") {
                try await supervisor.status().workers[victim].requests == 20
            }

            let stoppedWorker = ProcessIdentity(pids[victim])
            kill(pids[victim], SIGSTOP)

            let streamFailure = try await within(SupervisorFixture.deadline, "the hung worker's stream to abort") {
                await outcome { _ = try await stream.read() }
            }
            #expect(streamFailure.code == "worker_hung", "\(streamFailure)")
            #expect(streamFailure.message.contains("shard \(victim)"), "\(streamFailure)")
            let outcomes = try await values(of: waiting, within: SupervisorFixture.deadline, "the hung worker's requests")
            #expect(tally(outcomes.map(\.code)) == ["worker_hung": 20], "\(tally(outcomes.map(\.code)))")

            // Replaced by a new process; the stopped one was killed (and reaped) by the supervisor.
            let replacement = try await embedded.replacementPID(shard: victim, replacing: pids[victim])
            try await SupervisorFixture.waitUntil("the hung worker (pid \(pids[victim])) to be gone") {
                !stoppedWorker.isAlive
            }
            #expect(try await client.echo("again\n", to: listener.peer(keys[0].id52)) == "again\n")
            // The other shard never noticed.
            #expect(try await other.echoLine("undisturbed\n") == "undisturbed\n")
            let status = try await supervisor.status()
            #expect(status.workers[victim].pid == replacement)
            #expect(status.workers[victim].restarts == 1)
            #expect(status.workers[1 - victim].pid == pids[1 - victim])
            #expect(status.workers[1 - victim].restarts == 0)
            await other.reset(code: 0)
        }
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    @Test func workerCrashingAtStart_backsOff_requestsFailFastWithWorkerUnavailable_thenItRecovers() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        // A worker command that exits 3 at once while the flag file exists, else runs the worker.
        let flag = scratch.file("crash")
        let script = scratch.file("worker.sh")
        try "#!/bin/sh\n[ -e '\(flag)' ] && exit 3\nexec '\(peerpoolExecutable.path)' \"$@\"\n"
            .write(toFile: script, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: script)
        try #require(FileManager.default.createFile(atPath: flag, contents: nil))

        try await EmbeddedSupervisor.with(workers: 1, waitForWorkers: false, {
            $0.workerCommand = [script] + SupervisorFixture.workerCommand.dropFirst()
            $0.maxRestarts = 2
            $0.restartWindow = .seconds(30)
            $0.initialBackoff = .milliseconds(200)
            $0.maxBackoff = .seconds(1)
        }) { embedded in
            let supervisor = embedded.supervisor
            let peer = listener.peer(keys[0].id52)
            try await SupervisorFixture.waitUntil("the crashing shard to back off") {
                try await supervisor.status().workers[0].state == "backoff"
            }
            // Each request fails at once with worker_unavailable (never waits out its 20 s), also
            // those that arrive while the next attempt is starting.
            for attempt in 0..<5 {
                let failure = try await within(SupervisorFixture.deadline, "request \(attempt) to the backing-off shard") {
                    await outcome { _ = try await embedded.client.echo("x", to: peer, timeout: .seconds(20)) }
                }
                #expect(failure.code == "worker_unavailable", "attempt \(attempt): \(failure)")
                #expect(failure.message.contains("shard 0"), "attempt \(attempt): \(failure)")
            }
            let backingOff = try await supervisor.status().workers[0]
            #expect(backingOff.restarts >= 3, "\(backingOff)")

            try FileManager.default.removeItem(atPath: flag)
            try await SupervisorFixture.waitUntil("the shard to run again once its worker can start") {
                try await supervisor.status().workers[0].state == "running"
            }
            #expect(try await embedded.client.echo("recovered\n", to: peer) == "recovered\n")
            let recovered = try await supervisor.status().workers[0]
            #expect(recovered.pid.map { ProcessIdentity($0).isAlive } == true, "\(recovered)")
        }
        await listener.stop()
    }

    /// A burst of OPENs once stalled the routing thread long enough that the hang check, run
    /// before the queued heartbeats were read, killed the healthy worker.
    @Test
    func burstOfOpens_doesNotGetAHealthyWorkerKilledAsHung() async throws {
        let keys = try SupervisorFixture.keys(on: [0, 0, 0, 0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        // What `peerpool serve` runs with: a 250 ms heartbeat, killed after 3 s of silence.
        let defaults = SupervisorConfiguration()
        try await EmbeddedSupervisor.with(workers: 1, {
            $0.heartbeatInterval = defaults.heartbeatInterval
            $0.hangTimeout = defaults.hangTimeout
            // 125 streams per peer from one client, above the default fair share (50).
            $0.maxStreamsPerClientPerPeer = 1_000
        }) { embedded in
            let client = embedded.client
            let pid = try await embedded.runningPIDs()[0]
            let tasks = (0..<500).map { index in
                let peer = listener.peer(keys[index % keys.count].id52)
                return Task {
                    await outcome {
                        let stream = try await client.getStream(Self.echo, to: peer)
                        _ = try await stream.echoLine("\(index)\n")
                        try await stream.finish()
                        _ = try await stream.readToEnd(limit: 1024)
                    }
                }
            }
            let outcomes = try await values(of: tasks, within: .seconds(90), "500 echo streams")
            #expect(tally(outcomes.map(\.code)) == ["succeeded": 500], "\(tally(outcomes.map { "\($0.code): \($0.message)" }))")
            let worker = try await embedded.supervisor.status().workers[0]
            #expect(worker.pid == pid && worker.restarts == 0, "a busy, healthy worker was replaced: \(worker)")
        }
        await listener.stop()
    }
}
