import CZMQ
import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 8, "one client must never take down a shard": what a client written from the document
/// alone, or a fuzzer, found. Real supervisor, real worker processes, raw ZeroMQ clients.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SupervisorHardeningTests {
    static let echo = #"{"Generic":"echo"}"#

    // MARK: Numbers that reach ngtcp2

    /// A RESET code of 2^62 or more made ngtcp2 abort the worker, failing every stream of the
    /// shard. The supervisor refuses it (ABORTED `malformed_frame`) and the worker lives on.
    @Test func resetCodeOver62Bits_isRefused_andTheWorkerLivesOn() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let pid = try await embedded.runningPIDs()[0]
            let other = try await embedded.client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(keys[0].id52))
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                for (index, code) in [UInt64(1) << 62, UInt64.max].enumerated() {
                    let requestID = UInt64(index + 1)
                    let (stream, _) = try await dealer.open(id: requestID, json: openJSON(remote: keys[0].id52, address: listener.hostPort))
                    dealer.send(.reset, id: stream, body: WireInteger.bytes(code))
                    let aborted = try await dealer.expect(.aborted, id: stream, skipping: [.credit])
                    #expect(aborted.error.code == .malformedFrame, "\(aborted)")
                    #expect(aborted.error.message.contains("2^62"), "\(aborted)")
                }
                // The largest valid code still resets normally (no answer).
                let (stream, _) = try await dealer.open(id: 9, json: openJSON(remote: keys[0].id52, address: listener.hostPort))
                dealer.send(.reset, id: stream, body: WireInteger.bytes((UInt64(1) << 62) - 1))
                dealer.send(.status, id: 10)
                _ = try await dealer.expect(.statusReply, id: 10, skipping: [.credit])
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
            // Same worker, and its other stream is undisturbed.
            #expect(try await other.echoLine("still\n") == "still\n")
            let status = try await embedded.supervisor.status()
            #expect(status.workers[0].pid == pid && status.workers[0].restarts == 0, "\(status.workers[0])")
            await other.reset(code: 0)
        }
        await listener.stop()
    }

    /// The worker range-checks an OPEN against the supervisor's configured limits, not its own
    /// defaults: a window the supervisor allows (here over the default 16 MiB) opens.
    @Test func openWithinConfiguredLimitsAboveDefaults_opens() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 1, {
            $0.maxWindow = 32 << 20
            $0.maxRequestTimeout = .seconds(1200)
        }) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                let json = openJSON(remote: keys[0].id52, address: listener.hostPort, timeoutMilliseconds: 900_000, window: 20 << 20)
                let (stream, _) = try await dealer.open(id: 1, json: json)
                dealer.send(.reset, id: stream, body: WireInteger.bytes(UInt64(0)))
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
        }
        await listener.stop()
    }

    /// CREDIT returns consumed bytes; one that lifts the credit above the window is a broken
    /// client and gets its stream ABORTED `flow_control_violation` (it was accepted, and
    /// enough of them overflowed the worker's counter).
    @Test func creditBeyondTheWindow_abortsTheStream() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                let (stream, _) = try await dealer.open(id: 1, json: openJSON(remote: keys[0].id52, address: listener.hostPort, window: 4096))
                dealer.send(.credit, id: stream, body: WireInteger.bytes(UInt32.max))
                let aborted = try await dealer.expect(.aborted, id: stream, skipping: [.credit])
                #expect(aborted.error.code == .flowControlViolation, "\(aborted)")
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
            #expect(try await embedded.supervisor.status().workers[0].restarts == 0)
        }
        await listener.stop()
    }

    // MARK: The document and the behaviour agree

    /// ABORTED means the stream is gone, also after a bad stream message; a header error on a
    /// stream message answers ABORTED with the stream id (ERROR would be read as a request
    /// id); STATUS reusing a waiting OPEN's id is `duplicate_request`; an OPEN body over
    /// 64 KiB is `frame_too_large`.
    @Test func badStreamMessages_endTheStream_andRequestIDsStayUnambiguous() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            do {
                // An empty DATA body on an open stream: ABORTED, and the stream is gone.
                let (first, _) = try await dealer.open(id: 1, json: openJSON(remote: keys[0].id52, address: listener.hostPort))
                dealer.send(frames: [WireHeader(.data, id: first).bytes, []])
                let empty = try await dealer.expect(.aborted, id: first, skipping: [.credit])
                #expect(empty.error.code == .malformedFrame, "\(empty)")
                dealer.send(.finish, id: first)
                #expect(try await dealer.expect(.aborted, id: first, skipping: [.credit]).error.code == .unknownStream)

                // A DATA header with reserved bytes set: ABORTED with the stream id, stream gone.
                let (second, _) = try await dealer.open(id: 2, json: openJSON(remote: keys[0].id52, address: listener.hostPort))
                var header = WireHeader(.data, id: second).bytes
                header[3] = 1
                dealer.send(frames: [header, [1, 2, 3]])
                let reserved = try await dealer.expect(.aborted, id: second, skipping: [.credit])
                #expect(reserved.error.code == .malformedFrame, "\(reserved)")
                dealer.send(.finish, id: second)
                #expect(try await dealer.expect(.aborted, id: second, skipping: [.credit]).error.code == .unknownStream)

                // STATUS with the id of a waiting OPEN.
                dealer.send(.open, id: 3, body: Array(openJSON(remote: SecretKey.generate().id52, address: silent.hostPort, protocol: #""Ping""#, timeoutMilliseconds: 30_000).utf8))
                dealer.send(.status, id: 3)
                #expect(try await dealer.expect(.error, id: 3, skipping: [.credit]).error.code == .duplicateRequest)
                dealer.send(.cancel, id: 3)
                #expect(try await dealer.expect(.error, id: 3, skipping: [.credit]).error.code == .cancelled)

                // An OPEN body over 64 KiB.
                let large = #"{"remote":"\#(keys[0].id52)","protocol":"Ping","pad":"\#(String(repeating: "x", count: 65_536))"}"#
                dealer.send(.open, id: 4, body: Array(large.utf8))
                #expect(try await dealer.expect(.error, id: 4, skipping: [.credit]).error.code == .frameTooLarge)
                await dealer.close()
            } catch {
                await dealer.close()
                throw error
            }
        }
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    // MARK: A crashed worker leaves nothing behind

    /// After a crash the runtime's `swift-backtrace` helper (a child of the worker) outlived a
    /// worker the supervisor then killed, holding its descriptors. Stand-in for the helper: the
    /// worker command starts a background `sleep` before becoming the worker. Crashing the
    /// worker (SIGSEGV) must take the whole process group with it.
    @Test func crashedWorker_leavesNoProcessOfItsGroupBehind() async throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let pidFile = scratch.file("helper.pid")
        let script = scratch.file("worker.sh")
        try "#!/bin/sh\nsleep 300 &\necho $! > '\(pidFile)'\nexec '\(peerpoolExecutable.path)' \"$@\"\n"
            .write(toFile: script, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o700], ofItemAtPath: script)
        var helper: ProcessIdentity?
        defer { if let helper, helper.isAlive { kill(helper.pid, SIGKILL) } }
        try await EmbeddedSupervisor.with(workers: 1, {
            $0.workerCommand = [script] + SupervisorFixture.workerCommand.dropFirst()
        }) { embedded in
            let pid = try await embedded.runningPIDs()[0]
            let helperPID = try await SupervisorFixture.waitForValue("the helper's pid file") { () -> Int32? in
                (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            }
            helper = ProcessIdentity(helperPID)
            #expect(helper?.isAlive == true)
            // Each worker leads its own process group.
            #expect(ProcessTable.statFields(pid)?[2] == "\(pid)", "worker \(pid) is not its own group's leader")
            kill(pid, SIGSEGV)
            _ = try await embedded.replacementPID(shard: 0, replacing: pid)
            try await SupervisorFixture.waitUntil("the crashed worker's helper (pid \(helperPID)) to be gone", within: .seconds(10)) {
                !(helper?.isAlive ?? false)
            }
            try await SupervisorFixture.waitUntil("no process left in the crashed worker's group \(pid)", within: .seconds(10)) {
                ProcessTable.members(ofGroup: pid).isEmpty
            }
        }
    }

    // MARK: A client that outruns the supervisor

    /// 10,000 OPENs of 100 KiB in a fraction of a second took the supervisor from 35 MB to
    /// 450 MB, and it stayed at 180 MB. Now the frontend reads at most 1,000 messages ahead per
    /// client and an OPEN body is at most 64 KiB: a burst of 32 KiB OPENs (320 MB) must not grow the
    /// supervisor (a `peerpool serve` child, measured from /proc) by more than 150 MB, another
    /// client is served meanwhile, and every OPEN is answered once.
    @Test func burstOfLargeOpens_boundsTheSupervisorsMemory_andAnotherClientIsServed() async throws {
        let silent = try SilentPeer()
        let serve = try await ServeProcess(workers: 1)
        defer { withExtendedLifetime(silent) {} }
        do {
            let (client, _) = try await serve.connect()
            await client.close()
            let baseline = try #require(ProcessTable.residentBytes(serve.child.pid))
            let burst = try RawDealer(endpoint: serve.endpoint)
            let other = try RawDealer(endpoint: serve.endpoint)
            let count = 10_000
            let peer = SecretKey.generate().id52
            let pad = String(repeating: "p", count: 32 * 1024)
            let body = Array(#"{"remote":"\#(peer)","address":"\#(silent.hostPort)","protocol":"Ping","timeout_ms":3000,"pad":"\#(pad)"}"#.utf8)
            let header = { (id: UInt64) in WireHeader(.open, id: id).bytes }
            burst.sendMany((1...UInt64(count)).map { [header($0), body] })
            // While the burst is read: the other client is answered, and the supervisor's
            // memory is sampled.
            var peak = baseline
            for round in 0..<40 {
                other.send(.status, id: UInt64(round + 1))
                _ = try await other.expect(.statusReply, id: UInt64(round + 1), within: .seconds(10))
                peak = max(peak, ProcessTable.residentBytes(serve.child.pid) ?? 0)
                try await Task.sleep(for: .milliseconds(100))
            }
            var answered = Set<UInt64>()
            var codes: [String: Int] = [:]
            let end = ContinuousClock.now + .seconds(60)
            for _ in 0..<(count * 2) {
                guard (answered.count < count), (end > .now), let message = await burst.next(within: end - .now) else { break }
                guard let header = message.header else { continue }
                peak = max(peak, ProcessTable.residentBytes(serve.child.pid) ?? 0)
                #expect(!answered.contains(header.id), "request \(header.id) answered twice")
                answered.insert(header.id)
                codes[header.type == .error ? message.error.code.rawValue : "\(header.type)", default: 0] += 1
            }
            #expect(answered.count == count, "\(answered.count) of \(count) answered: \(codes)")
            let grown = (peak - baseline) / 1_048_576
            #expect(grown < 150, "the supervisor grew by \(grown) MiB during the burst (baseline \(baseline / 1_048_576) MiB)")
            let after = (ProcessTable.residentBytes(serve.child.pid) ?? 0) / 1_048_576
            #expect(after - baseline / 1_048_576 < 100, "the supervisor stayed at \(after) MiB after the burst (baseline \(baseline / 1_048_576) MiB)")
            await burst.close()
            await other.close()
        } catch {
            await serve.kill()
            throw error
        }
        await serve.kill()
    }

    /// A client that never reads its replies cannot be told anything while its queue is full;
    /// it must not be dropped silently either: it is counted (STATUS `clients_overrun`), and its
    /// next message, once it reads again, is answered ERROR id 0 `client_overrun` first.
    @Test func clientThatStopsReading_isDroppedCounted_andToldOnItsNextMessage() async throws {
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let context = try ZMQContext()
            defer { context.terminate() }
            let flooder = try FloodingDealer(context: context, endpoint: embedded.supervisor.frontendEndpoint)
            defer { flooder.close() }
            // Replies queue in the supervisor (the flooder's socket takes one message at a time
            // and never reads) until its 50,000-message limit.
            await flooder.send(statusRequests: 60_000)
            try await SupervisorFixture.waitUntil("the supervisor to drop the client that does not read", within: .seconds(60)) {
                (try await embedded.supervisor.status().clientsOverrun ?? 0) > 0
            }
            // Another client is served meanwhile.
            let status = try await embedded.client.status()
            #expect((status.clientsOverrun ?? 0) > 0)
            // The flooder reads what was queued for it, then asks again: the first message of
            // its that the supervisor can answer after the drop brings the notice first.
            let (notices, final) = await flooder.drainThenAsk(id: 0xABCD, within: .seconds(60))
            // Told once, whether with the rest of its flood or with the next request. (The drain
            // ends after a second of quiet: on a loaded machine the rest of the flood, and the
            // notice among it, may still arrive after the new request went out.)
            let told = notices + final.filter { $0 == "error 0 client_overrun" }.count
            #expect(told == 1, "ERROR client_overrun reached the dropped client \(told) times; then: \(final.prefix(4))")
            #expect(final.last == "status_reply \(0xABCD)", "\(final.suffix(3))")
            #expect(try await embedded.supervisor.status().clientsOverrun == 1)
        }
    }

    // MARK: Fairness between clients

    /// One client holding every stream slot of a peer's connection (QUIC runs 100 at once)
    /// made another client's OPEN to that peer wait until `ack_timeout`. Each client now gets
    /// at most `max_streams_per_client_per_peer` (50) open or opening per peer.
    @Test func greedyClient_cannotStarveAnotherClientsOpenToTheSamePeer() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        let peer = listener.peer(keys[0].id52)
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let greedy = embedded.client
            let fair = try await embedded.supervisor.client(configuration: .init(requestTimeout: .seconds(30)))
            let held = StreamBox()
            let tasks = (0..<120).map { _ in
                Task { () -> String in
                    do {
                        let stream = try await greedy.getStream(ProtocolHeader(.generic("echo")), to: peer, timeout: .seconds(20))
                        held.append(stream)
                        return "opened"
                    } catch let error as WireError {
                        return error.code.rawValue
                    } catch {
                        return "\(error)"
                    }
                }
            }
            // The greedy client holds what it got: every slot of the connection (100) without
            // the limit, its share (50) with it, the rest refused.
            try await SupervisorFixture.waitUntil("the greedy client's opens to settle (\(held.count) open)") {
                let waiting = try await embedded.supervisor.status().requests
                return held.count >= 100 || (held.count >= 50 && waiting == 0)
            }
            let started = ContinuousClock.now
            let echoed = await outcome {
                let answer = try await fair.echo("mine\n", to: peer, timeout: .seconds(5))
                guard answer == "mine\n" else { throw TestSupportError("echo \(answer.debugDescription)") }
            }
            #expect(echoed.code == "succeeded", "the other client's OPEN: \(echoed) after \(ContinuousClock.now - started)")
            for task in tasks { task.cancel() }
            let outcomes = try await values(of: tasks, within: .seconds(60), "the greedy client's opens")
            #expect(tally(outcomes) == ["opened": 50, "too_many_streams": 70], "\(tally(outcomes))")
            for stream in held.all { await stream.reset(code: 0) }
            await fair.close()
        }
        await listener.stop()
    }

    // MARK: Keep what held

    /// Random and mutated frames (fixed seed, so a failure replays) at the frontend from one
    /// DEALER: afterwards a normal request works and no worker was restarted.
    @Test func fuzzedFrames_fromADealer_leaveTheSupervisorAndWorkersServing() async throws {
        let keys = try SupervisorFixture.keys(on: [0, 1], workers: 2)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 2) { embedded in
            let pids = try await embedded.runningPIDs()
            var random = SplitMix64(seed: 0x5EED_0008)
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            let valid = Array(openJSON(remote: keys[0].id52, address: listener.hostPort, protocol: #""Ping""#, timeoutMilliseconds: 2000).utf8)
            var messages: [[[UInt8]]] = []
            for _ in 0..<5_000 {
                messages.append(Self.fuzzedMessage(&random, validOpen: valid))
            }
            dealer.sendMany(messages)
            // A STATUS after the fuzz is answered once everything before it was read.
            dealer.send(.status, id: 0xFFFF_FFFF_FFFF_FFFF)
            let end = ContinuousClock.now + .seconds(60)
            var replies = 0
            var answered = false
            for _ in 0..<100_000 {
                guard end > .now, let message = await dealer.next(within: end - .now) else { break }
                replies += 1
                if message.header?.type == .statusReply, message.header?.id == 0xFFFF_FFFF_FFFF_FFFF { answered = true; break }
            }
            #expect(answered, "no answer to the STATUS sent after the fuzz (\(replies) replies before)")
            await dealer.close()
            for key in keys {
                #expect(try await embedded.client.echo("after fuzz\n", to: listener.peer(key.id52)) == "after fuzz\n")
            }
            let status = try await embedded.supervisor.status()
            #expect(status.workers.map(\.pid) == pids, "\(status.workers)")
            #expect(status.workers.allSatisfy { $0.restarts == 0 && $0.state == "running" }, "\(status.workers)")
        }
        await listener.stop()
    }

    static func fuzzedMessage(_ random: inout SplitMix64, validOpen: [UInt8]) -> [[UInt8]] {
        let types: [UInt8] = [0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x13, 0x14, 0x40, 0x41, 0x42, 0x81, 0x82, 0x83, 0x00, 0xFF]
        var header = WireHeader(WireMessageType(rawValue: types[Int(random.next() % UInt64(types.count))]), id: random.next() % 8).bytes
        if random.next() % 8 == 0 { header[4..<12] = ArraySlice(WireInteger.bytes(random.next())) }
        if random.next() % 16 == 0 { header[0] = UInt8(truncatingIfNeeded: random.next()) }
        if random.next() % 16 == 0 { header[2] = 1 }
        if random.next() % 16 == 0 { header = Array(header.prefix(Int(random.next() % 12))) }
        var frames = [header]
        switch random.next() % 6 {
        case 0: break
        case 1: frames.append(WireInteger.bytes(random.next()))  // a RESET code, any size
        case 2: frames.append(WireInteger.bytes(UInt32(truncatingIfNeeded: random.next())))  // CREDIT
        case 3:  // a mutated OPEN body
            var body = validOpen
            for _ in 0..<(random.next() % 4) {
                let index = Int(random.next() % UInt64(body.count))
                body[index] = UInt8(truncatingIfNeeded: random.next())
            }
            frames.append(body)
        case 4: frames.append((0..<(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        default:
            frames.append([UInt8](repeating: 0x41, count: Int(random.next() % 2000)))
            if random.next() % 4 == 0 { frames.append([1, 2, 3]) }
        }
        return frames
    }

    /// Kills one shard's worker again and again while the other shard serves without pause:
    /// no request on the other shard fails, and every request waiting on the killed shard is
    /// answered, each time.
    @Test func killLoop_otherShardNeverFails_everyWaiterOnTheKilledShardIsAnswered() async throws {
        let workers = 2
        let victim = 0
        let survivor = 1
        let kills = 5
        let waiters = 20
        let keys = try SupervisorFixture.keys(on: [survivor], workers: workers)
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        let silentIDs = try SupervisorFixture.id52s(onShard: victim, count: waiters, workers: workers)
        try await EmbeddedSupervisor.with(workers: workers, { $0.maxRestarts = 100 }) { embedded in
            let client = embedded.client
            let stop = Gate()
            defer { stop.open() }
            let served = Counter()
            let failures = Counter()
            let survivorPeer = listener.peer(keys[0].id52)
            // Bounded in count; ends when the test opens the gate.
            let background = Task { () -> String in
                var lastFailure = ""
                for index in 0..<100_000 where !stop.isOpen {
                    let result = await outcome { _ = try await client.echo("\(index)\n", to: survivorPeer, timeout: .seconds(20)) }
                    if result.code == "succeeded" { served.increment() } else { failures.increment(); lastFailure = "\(result)" }
                }
                return lastFailure
            }
            var pid = try await embedded.runningPIDs()[victim]
            for round in 0..<kills {
                let waiting = silentIDs.map { id in
                    Task { await outcome { _ = try await client.getStream(ProtocolHeader(.ping), to: silent.peer(id), timeout: .seconds(60)) } }
                }
                try await SupervisorFixture.waitUntil("round \(round): shard \(victim)'s worker to hold \(waiters) requests") {
                    try await embedded.supervisor.status().workers[victim].requests == waiters
                }
                kill(pid, SIGKILL)
                let outcomes = try await values(of: waiting, within: SupervisorFixture.deadline, "round \(round): the killed shard's waiters")
                #expect(tally(outcomes.map(\.code)) == ["worker_crashed": waiters], "round \(round): \(tally(outcomes.map(\.code)))")
                pid = try await embedded.replacementPID(shard: victim, replacing: pid)
            }
            stop.open()
            let lastFailure = try await within(.seconds(60), "the other shard's requests to stop") { await background.value }
            #expect(failures.value == 0, "\(failures.value) requests on shard \(survivor) failed, last: \(lastFailure)")
            #expect(served.value > 0)
            #expect(try await embedded.supervisor.status().workers[survivor].restarts == 0)
        }
        await listener.stop()
        withExtendedLifetime(silent) {}
    }

    // MARK: Clients that come and go

    /// A new client's first request was sometimes never answered when another client
    /// disconnected at the same moment (its connection's descriptor was reused, and the old
    /// connection's disconnect event dropped the newcomer). Many threads each connect a fresh
    /// DEALER, send one OPEN, wait (bounded) for its answer and disconnect at once.
    @Test func clientsConnectingWhileOthersDisconnect_everyRequestGetsExactlyOneAnswer() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let endpoint = embedded.supervisor.frontendEndpoint
            let body = Array(openJSON(remote: keys[0].id52, address: listener.hostPort, protocol: #""Ping""#, timeoutMilliseconds: 10_000).utf8)
            let threads = 8
            let perThread = 200
            let results = try await ChurnClients.run(endpoint: endpoint, threads: threads, perThread: perThread, body: body, answerWithin: .seconds(12))
            #expect(results.unanswered == 0, "\(results.unanswered) of \(threads * perThread) requests got no answer; first: \(results.firstUnanswered ?? "")")
            #expect(results.answers["opened", default: 0] == threads * perThread, "\(results.answers)")
            // Nothing the departed clients left behind lingers.
            var last: SupervisorStatus?
            do {
                try await SupervisorFixture.waitUntil("the churned clients' requests and streams to be gone") {
                    let status = try await embedded.supervisor.status()
                    last = status
                    return status.requests == 0 && status.streams == 0 && status.clients <= 1
                }
            } catch {
                Issue.record("left behind: \(last.map { "\($0.clients) clients, \($0.requests) requests, \($0.streams) streams" } ?? "?")")
            }
        }
        await listener.stop()
    }
}

/// Plain threads, each with a fresh DEALER per request: connect, OPEN, wait for the answer
/// (zmq_poll with a deadline), close. Blocking libzmq calls
/// stay off Swift's cooperative threads.
enum ChurnClients {
    struct Results: Sendable {
        var answers: [String: Int] = [:]
        var unanswered = 0
        var firstUnanswered: String?
    }

    static func run(endpoint: String, threads: Int, perThread: Int, body: [UInt8], answerWithin: Duration) async throws -> Results {
        let context = try ZMQContext(ioThreads: 1)
        defer { context.terminate() }
        final class Collected: Sendable {
            let state = Mutex<(results: Results, finished: Int)>((Results(), 0))
        }
        let collected = Collected()
        let timeoutMilliseconds = Int(answerWithin.components.seconds) * 1000
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            for thread in 0..<threads {
                let worker = Thread {
                    var local = Results()
                    for index in 0..<perThread {
                        let requestID = UInt64(thread * perThread + index + 1)
                        let outcome = oneRequest(context: context, endpoint: endpoint, id: requestID, body: body, timeoutMilliseconds: timeoutMilliseconds)
                        switch outcome {
                        case .answered(let code):
                            local.answers[code, default: 0] += 1
                        case .unanswered:
                            local.unanswered += 1
                            if local.firstUnanswered == nil { local.firstUnanswered = "request \(requestID)" }
                        }
                    }
                    let done = collected.state.withLock { state -> Bool in
                        for (code, count) in local.answers { state.results.answers[code, default: 0] += count }
                        state.results.unanswered += local.unanswered
                        if state.results.firstUnanswered == nil { state.results.firstUnanswered = local.firstUnanswered }
                        state.finished += 1
                        return state.finished == threads
                    }
                    if done { continuation.resume() }
                }
                worker.start()
            }
        }
        return collected.state.withLock { $0.results }
    }

    enum Outcome {
        case answered(String)
        case unanswered
    }

    /// One client's life: a fresh socket, one OPEN, its answer, gone.
    static func oneRequest(context: ZMQContext, endpoint: String, id: UInt64, body: [UInt8], timeoutMilliseconds: Int) -> Outcome {
        guard let socket = try? ZMQSocket(context, .dealer), (try? socket.connect(endpoint)) != nil else { return .unanswered }
        defer { socket.close() }
        socket.send(WireHeader(.open, id: id), more: true)
        socket.send(body, more: false)
        let end = ContinuousClock.now + .milliseconds(timeoutMilliseconds)
        var answer: String?
        // Bounded: each turn waits on zmq_poll until the deadline.
        for _ in 0..<1_000 {
            let remaining = end - .now
            guard remaining > .zero else { break }
            guard let message = receive(socket, within: Int(remaining.components.seconds) * 1000 + 1) else { continue }
            guard let header = message.header, header.id == id else { continue }
            switch header.type {
            case .opened: answer = "opened"
            case .error: answer = WireError(jsonBody: message.body ?? []).code.rawValue
            default: continue
            }
            break
        }
        guard let answer else { return .unanswered }
        return .answered(answer)
    }

    private static func receive(_ socket: ZMQSocket, within milliseconds: Int) -> RawDealer.Message? {
        var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        guard zmq_poll(&item, 1, milliseconds) > 0, let (frames, _) = try? socket.receive(maxParts: 4) else { return nil }
        return RawDealer.Message(frames: frames.map(\.bytes))
    }
}

/// Streams tasks hand back to the test, kept open until it resets them.
final class StreamBox: Sendable {
    private let streams = Mutex<[SupervisedStream]>([])
    func append(_ stream: SupervisedStream) { streams.withLock { $0.append(stream) } }
    var count: Int { streams.withLock { $0.count } }
    var all: [SupervisedStream] { streams.withLock { $0 } }
}

/// A small deterministic generator (SplitMix64), so a fuzz failure replays from its seed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A DEALER on a thread of its own that floods STATUS requests and reads nothing until told:
/// receive high-water mark 1, so the supervisor's queue toward it fills.
final class FloodingDealer: @unchecked Sendable {
    private let socket: ZMQSocket
    private let lock = NSLock()

    init(context: ZMQContext, endpoint: String) throws {
        socket = try ZMQSocket(context, .dealer)
        try socket.setOption(ZMQ_RCVHWM, 1)
        try socket.setOption(ZMQ_RCVBUF, 4096)
        try socket.setOption(ZMQ_SNDHWM, 0)
        try socket.connect(endpoint)
    }

    /// Sends on a plain thread (zmq calls block nothing here: no send limit).
    func send(statusRequests count: Int) async {
        await onThread {
            for index in 0..<count {
                self.socket.send(WireHeader(.status, id: UInt64(index + 1)), more: false)
            }
        }
    }

    /// Reads until nothing arrives for a second (bounded by `within`), counting ERROR id 0
    /// `client_overrun`; then sends STATUS `id` and returns the count and what came after as
    /// "type id [code]" lines, up to its STATUS_REPLY.
    func drainThenAsk(id: UInt64, within timeout: Duration) async -> (notices: Int, final: [String]) {
        await onThread { () -> (notices: Int, final: [String]) in
            let end = ContinuousClock.now + timeout
            var notices = 0
            for _ in 0..<1_000_000 where ContinuousClock.now < end {
                guard let message = self.receive(milliseconds: 1000) else { break }
                if message.header?.type == .error, message.header?.id == 0, message.error.code == .clientOverrun { notices += 1 }
            }
            self.socket.send(WireHeader(.status, id: id), more: false)
            var seen: [String] = []
            for _ in 0..<100 where ContinuousClock.now < end {
                guard let message = self.receive(milliseconds: 5000), let header = message.header else { break }
                let code = header.type == .error ? " \(message.error.code)" : ""
                seen.append("\(header.type == .error ? "error" : header.type == .statusReply ? "status_reply" : "\(header.type)") \(header.id)\(code)")
                if header.type == .statusReply, header.id == id { break }
            }
            return (notices, seen)
        }
    }

    private func receive(milliseconds: Int) -> RawDealer.Message? {
        var item = zmq_pollitem_t(socket: socket.handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        guard zmq_poll(&item, 1, milliseconds) > 0, let (frames, _) = try? socket.receive(maxParts: 4) else { return nil }
        return RawDealer.Message(frames: frames.map(\.bytes))
    }

    private func onThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                self.lock.lock()
                defer { self.lock.unlock() }
                continuation.resume(returning: body())
            }
            thread.start()
        }
    }

    func close() { lock.lock(); socket.close(); lock.unlock() }
}
