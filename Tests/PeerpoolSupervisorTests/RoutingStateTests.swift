import Foundation
import Logging
import PeerpoolIdentity
import PeerpoolWire
import Testing
@testable import PeerpoolSupervisor

/// `SupervisorRoutingState` alone: no sockets, no processes, a manual clock. Each test checks the
/// exact actions, written as short lines (`A ← ERROR 7 worker_crashed`, `w0 ← OPEN 1`,
/// `spawn w0 g2`, `tick +2500ms`).
struct RoutingStateTests {
    typealias State = SupervisorRoutingState

    /// The routing under test, its manual clock and two clients.
    struct Harness {
        var state: State
        let start = ContinuousClock.now
        var now: ContinuousClock.Instant
        let a = State.ClientKey(routingID: Array("A".utf8))
        let b = State.ClientKey(routingID: Array("B".utf8))

        init(workers: Int = 2, _ configure: (inout SupervisorConfiguration) -> Void = { _ in }) {
            var configuration = SupervisorConfiguration()
            configuration.workers = workers
            configuration.maxRestarts = 2
            configuration.restartWindow = .seconds(10)
            configuration.initialBackoff = .milliseconds(500)
            configuration.maxBackoff = .seconds(2)
            configuration.hangTimeout = .seconds(3)
            configuration.startTimeout = .seconds(5)
            configure(&configuration)
            now = start
            let logger = Logger(label: "routing-test", factory: { _ in SwiftLogNoOpLogHandler() })
            state = State(configuration: configuration, identities: [], logger: logger, now: start)
        }

        /// Advances the manual clock.
        mutating func advance(_ duration: Duration) { now += duration }

        func name(_ key: State.ClientKey) -> String { String(decoding: key.routingID, as: UTF8.self) }

        func describe(_ actions: [State.Action]) -> [String] {
            actions.map { action in
                switch action {
                case .sendToClient(let key, let header, let body):
                    return "\(name(key)) ← \(header.type) \(header.id)\(code(header, body))"
                case .sendToWorker(let shard, let header, _):
                    return "w\(shard) ← \(header.type) \(header.id)"
                case .replyStatus(let key, let id): return "\(name(key)) ← status \(id)"
                case .spawnWorker(let shard, let generation): return "spawn w\(shard) g\(generation)"
                case .killWorker(let shard, let reason): return "kill w\(shard) \(reason)"
                case .stopWorker(let shard): return "stop w\(shard)"
                case .scheduleTick(let instant):
                    let (seconds, attoseconds) = (instant - start).components
                    return "tick +\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
                case .allWorkersStopped: return "all stopped"
                }
            }
        }

        private func code(_ header: WireHeader, _ body: State.Action.Body) -> String {
            guard header.type == .error || header.type == .aborted else { return "" }
            let bytes: [UInt8]
            switch body {
            case .none: return ""
            case .bytes(let made): bytes = made
            case .frame(let frame): bytes = frame.bytes
            }
            return " " + WireError(jsonBody: bytes).code.rawValue
        }

        // Events, each answering its actions described.

        mutating func startWorkers() -> [String] { describe(state.start(now: now)) }

        mutating func client(_ key: State.ClientKey, _ type: WireMessageType, _ id: UInt64, _ body: [UInt8]? = nil) -> [String] {
            describe(state.receivedFromClient(WireHeader(type, id: id), body: body.map { ZMQFrame($0) }, extraFrames: false, from: key, now: now))
        }

        mutating func open(_ key: State.ClientKey, _ id: UInt64, to peer: ID52, timeoutMilliseconds: Int = 30_000) -> [String] {
            client(key, .open, id, Array(openJSON(remote: peer, address: nil, timeoutMilliseconds: timeoutMilliseconds).utf8))
        }

        mutating func worker(_ shard: Int, _ type: WireMessageType, _ id: UInt64 = 0, _ body: [UInt8]? = nil) -> [String] {
            describe(state.receivedFromWorker(shard: shard, WireHeader(type, id: id), body: body.map { ZMQFrame($0) }, now: now))
        }

        mutating func opened(_ shard: Int, _ id: UInt64, window: UInt32 = 65_536) -> [String] {
            worker(shard, .opened, id, OpenedBody(streamID: id, sendWindow: window).encoded())
        }

        mutating func started(_ shard: Int) { state.workerStarted(shard: shard, pid: 100 + Int32(shard)) }

        mutating func crashed(_ shard: Int) -> [String] {
            describe(state.workerExited(shard: shard, .terminated(ProcessTermination(exitCode: nil, signal: 9)), now: now))
        }

        mutating func tick() -> [String] { describe(state.tick(now: now)) }

        /// `count` punctual ticks 100 ms apart, the workers `beating` sending a heartbeat before
        /// each: every action they produced.
        mutating func ticks(_ count: Int, beating: [Int]) -> [String] {
            var actions: [String] = []
            for _ in 0..<count {
                advance(.milliseconds(100))
                for shard in beating { _ = worker(shard, .heartbeat) }
                actions += tick()
            }
            return actions
        }

        /// Workers running; client A's request 1 is stream 1 on shard 0 with `window` bytes of credit.
        static func withStream(window: UInt32) throws -> Harness {
            var h = Harness()
            h.running()
            _ = h.open(h.a, 1, to: try RoutingStateTests.peers(onShard: 0)[0])
            _ = h.opened(0, 1, window: window)
            return h
        }

        /// Both workers started and said HELLO.
        mutating func running() {
            _ = startWorkers()
            for shard in state.workers.indices {
                started(shard)
                _ = worker(shard, .hello)
            }
        }
    }

    static func peers(onShard shard: Int, _ count: Int = 1) throws -> [ID52] {
        try SupervisorFixture.id52s(onShard: shard, count: count, workers: 2)
    }

    // MARK: Routing

    /// The metric events the driver drains: an open accepted and answered after 7 ms, data both
    /// ways, and a crash failing a waiter, all on the owning shard.
    @Test func metricEvents_countOpensLatencyDataAndFailures_perShard() throws {
        var h = Harness()
        h.running()
        _ = h.state.takeMetrics()
        let peers = try Self.peers(onShard: 1, 2)
        _ = h.open(h.a, 1, to: peers[0])
        h.advance(.milliseconds(7))
        _ = h.opened(1, 1)
        _ = h.client(h.a, .data, 1, Array("abc".utf8))
        _ = h.worker(1, .data, 1, Array("de".utf8))
        _ = h.open(h.a, 2, to: peers[1])
        _ = h.crashed(1)
        #expect(h.state.takeMetrics() == [
            .opening(shard: 1), .opened(shard: 1, latency: .milliseconds(7)),
            .data(shard: 1, toPeer: true, bytes: 3), .data(shard: 1, toPeer: false, bytes: 2),
            .opening(shard: 1), .failed(shard: 1, code: "worker_crashed"),
        ])
        #expect(h.state.takeMetrics().isEmpty)
    }

    @Test func open_isSentToTheShardThatOwnsThePeer_andOpenedGoesBackUnderTheRequestID() throws {
        var h = Harness()
        #expect(h.startWorkers() == ["spawn w0 g1", "spawn w1 g1"])
        h.started(0)
        h.started(1)
        #expect(h.worker(0, .hello).isEmpty)
        #expect(h.worker(1, .hello).isEmpty)
        let peer = try Self.peers(onShard: 1)[0]
        #expect(h.open(h.a, 7, to: peer) == ["w1 ← OPEN 1"])
        #expect(h.opened(1, 1) == ["A ← OPENED 7"])
        #expect(h.state.opens.isEmpty)
        #expect(h.state.streams[1]?.shard == 1)
    }

    @Test func open_whileTheWorkerStarts_waitsForHello() throws {
        var h = Harness()
        _ = h.startWorkers()
        h.started(0)
        let peer = try Self.peers(onShard: 0)[0]
        #expect(h.open(h.a, 1, to: peer).isEmpty)
        #expect(h.open(h.b, 1, to: peer).isEmpty)
        #expect(h.worker(0, .hello) == ["w0 ← OPEN 1", "w0 ← OPEN 2"])
    }

    @Test func duplicateRequestID_isRefused_andTheFirstStillWaits() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        #expect(h.open(h.a, 5, to: peer) == ["w0 ← OPEN 1"])
        #expect(h.open(h.a, 5, to: peer) == ["A ← ERROR 5 duplicate_request"])
        #expect(h.client(h.a, .status, 5) == ["A ← ERROR 5 duplicate_request"])
        #expect(h.open(h.b, 5, to: peer) == ["w0 ← OPEN 2"])  // another client's id space
        #expect(h.opened(0, 1) == ["A ← OPENED 5"])
    }

    // MARK: Worker failure

    @Test func workerCrash_failsEveryWaiterAndStreamOfItsShard_andNothingOfOthers() throws {
        var h = Harness()
        h.running()
        let zero = try Self.peers(onShard: 0)[0]
        let one = try Self.peers(onShard: 1)[0]
        _ = h.open(h.a, 1, to: zero)  // internal 1: becomes a stream
        _ = h.open(h.b, 2, to: zero)  // internal 2: waits
        _ = h.open(h.a, 3, to: one)   // internal 3: becomes a stream
        _ = h.open(h.b, 4, to: one)   // internal 4: waits
        _ = h.opened(0, 1)
        _ = h.opened(1, 3)
        #expect(h.crashed(0) == ["B ← ERROR 2 worker_crashed", "A ← ABORTED 1 worker_crashed", "spawn w0 g2"])
        #expect(h.state.opens.count == 1 && h.state.streams.count == 1)
        #expect(h.client(h.a, .data, 3, [1, 2, 3]) == ["w1 ← DATA 3"])
        #expect(h.client(h.a, .data, 1, [1]) == ["A ← ABORTED 1 unknown_stream"])
        #expect(h.opened(1, 4) == ["B ← OPENED 4"])
    }

    @Test func restartIntensity_backsOffWithExactTimes_failsFast_andResetsAfterACleanWindow() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        // maxRestarts 2: two restarts at once, the third within the window backs off 500 ms.
        #expect(h.crashed(0) == ["spawn w0 g2"])
        h.advance(.seconds(1))
        #expect(h.crashed(0) == ["spawn w0 g3"])
        h.advance(.seconds(1))
        // A request queued for the starting worker fails with it when the shard backs off.
        #expect(h.open(h.a, 9, to: peer).isEmpty)
        #expect(h.crashed(0) == ["A ← ERROR 9 worker_unavailable", "tick +2500ms"])
        #expect(h.state.workers[0].state == .backoff(until: h.start + .milliseconds(2500)))
        #expect(h.open(h.a, 10, to: peer) == ["A ← ERROR 10 worker_unavailable"])
        h.advance(.milliseconds(499))
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.tick() == ["spawn w0 g4"])
        // Crashing again at once: the next backoff doubles to 1 s.
        h.advance(.milliseconds(100))
        #expect(h.crashed(0) == ["tick +3600ms"])
        h.advance(.seconds(1))
        #expect(h.tick() == ["spawn w0 g5"])
        // Up for a whole window (ticking punctually): the backoff level and the restarts in the
        // window are forgotten, so the next crash restarts at once.
        h.started(0)
        _ = h.worker(0, .hello)
        #expect(h.ticks(110, beating: [0, 1]).isEmpty)
        #expect(h.state.workers[0].backoffLevel == 0)
        #expect(h.crashed(0) == ["spawn w0 g6"])
    }

    @Test func hungWorker_isKilledAfterTheHangTimeout_andItsRequestsFailAsHung() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        _ = h.open(h.a, 1, to: peer)
        // Worker 1 keeps beating, worker 0 is silent from its HELLO on.
        #expect(h.ticks(30, beating: [1]).isEmpty)
        #expect(!h.state.wouldJudgeSilentWorkers(now: h.now))
        h.advance(.milliseconds(1))
        #expect(h.state.wouldJudgeSilentWorkers(now: h.now))
        #expect(h.tick() == ["kill w0 hung"])
        h.advance(.milliseconds(100))
        #expect(h.tick().isEmpty)  // killed once
        #expect(h.crashed(0) == ["A ← ERROR 1 worker_hung", "spawn w0 g2"])
    }

    @Test func hangCheck_skipsATickAfterTheLoopStalled() throws {
        var h = Harness()
        h.running()
        h.advance(.seconds(4))  // our own stall: the heartbeats were not read
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(100))
        #expect(h.tick() == ["kill w0 hung", "kill w1 hung"])
    }

    @Test func workerThatNeverSaysHello_isKilledAfterTheStartTimeout() throws {
        var h = Harness()
        _ = h.startWorkers()
        h.started(0)
        h.started(1)
        _ = h.worker(1, .hello)
        #expect(h.ticks(50, beating: [1]).isEmpty)
        #expect(h.ticks(1, beating: [1]) == ["kill w0 startTimeout"])
    }

    // MARK: Requests

    @Test func openTimeout_queuedFailsAtTheDeadline_sentOneASecondLater() throws {
        var h = Harness(workers: 2)
        _ = h.startWorkers()
        h.started(0)
        h.started(1)
        _ = h.worker(1, .hello)
        let queued = try Self.peers(onShard: 0)[0]
        let sent = try Self.peers(onShard: 1)[0]
        #expect(h.open(h.a, 1, to: queued, timeoutMilliseconds: 2_000).isEmpty)
        #expect(h.open(h.a, 2, to: sent, timeoutMilliseconds: 2_000) == ["w1 ← OPEN 2"])
        h.advance(.milliseconds(1_999))
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.tick() == ["A ← ERROR 1 timeout"])
        h.advance(.milliseconds(999))
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.tick() == ["w1 ← CANCEL 2", "A ← ERROR 2 timeout"])
        #expect(h.opened(1, 2) == ["w1 ← RESET 2"])  // too late: nobody to give it to
    }

    /// Queued at first, sent when the worker said HELLO: its deadline moves to the worker's
    /// (plus the slack) although it was due earlier as a queued one.
    @Test func openTimeout_queuedThenSent_failsASecondAfterTheDeadline() throws {
        var h = Harness(workers: 1)
        _ = h.startWorkers()
        h.started(0)
        let peer = try Self.peers(onShard: 0)[0]
        #expect(h.open(h.a, 1, to: peer, timeoutMilliseconds: 2_000).isEmpty)
        h.advance(.milliseconds(500))
        #expect(h.worker(0, .hello) == ["w0 ← OPEN 1"])
        h.advance(.milliseconds(1_500))
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(999))
        #expect(h.tick().isEmpty)
        h.advance(.milliseconds(1))
        #expect(h.tick() == ["w0 ← CANCEL 1", "A ← ERROR 1 timeout"])
    }

    @Test func clientDisconnect_withdrawsItsRequestsAndResetsItsStreams_only() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        _ = h.open(h.a, 1, to: peer)
        _ = h.open(h.a, 2, to: peer)
        _ = h.open(h.b, 1, to: peer)
        _ = h.opened(0, 2)
        #expect(Set(h.describe(h.state.clientDisconnected(h.a, now: h.now))) == ["w0 ← CANCEL 1", "w0 ← RESET 2"])
        #expect(h.state.holdings(of: h.a).requests == 0 && h.state.holdings(of: h.a).streams == 0)
        #expect(h.state.holdings(of: h.b).requests == 1 && h.state.holdings(of: h.b).streams == 0)
        #expect(h.worker(0, .data, 2, [1]).isEmpty)  // the stream is forgotten
    }

    @Test func cancel_withdrawsTheRequest() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        _ = h.open(h.a, 4, to: peer)
        _ = h.state.takeMetrics()
        #expect(h.client(h.a, .cancel, 4) == ["w0 ← CANCEL 1", "A ← ERROR 4 cancelled"])
        #expect(h.state.takeMetrics() == [.failed(shard: 0, code: "cancelled")])
        #expect(h.client(h.a, .cancel, 4).isEmpty)
    }

    @Test func perClientPerPeerLimit_countsOpeningAndOpen_perClient() throws {
        var h = Harness { $0.maxStreamsPerClientPerPeer = 2 }
        h.running()
        let peers = try Self.peers(onShard: 0, 2)
        #expect(h.open(h.a, 1, to: peers[0]) == ["w0 ← OPEN 1"])
        #expect(h.open(h.a, 2, to: peers[0]) == ["w0 ← OPEN 2"])
        _ = h.opened(0, 1)
        #expect(h.open(h.a, 3, to: peers[0]) == ["A ← ERROR 3 too_many_streams"])
        #expect(h.open(h.a, 4, to: peers[1]) == ["w0 ← OPEN 3"])
        #expect(h.open(h.b, 1, to: peers[0]) == ["w0 ← OPEN 4"])
        // The stream ends both ways: a place frees up.
        _ = h.client(h.a, .finish, 1)
        _ = h.worker(0, .finish, 1)
        #expect(h.open(h.a, 5, to: peers[0]) == ["w0 ← OPEN 5"])
    }

    // MARK: Flow control

    @Test func dataBeyondCredit_abortsTheStreamOnBothSides() throws {
        var h = try Harness.withStream(window: 4)
        #expect(h.client(h.a, .data, 1, [1, 2, 3]) == ["w0 ← DATA 1"])
        #expect(h.client(h.a, .data, 1, [4, 5]) == ["w0 ← RESET 1", "A ← ABORTED 1 flow_control_violation"])
        #expect(h.state.streams.isEmpty)
    }

    @Test func creditFromTheWorker_letsTheClientSendMore() throws {
        var h = try Harness.withStream(window: 2)
        #expect(h.client(h.a, .data, 1, [1, 2]) == ["w0 ← DATA 1"])
        #expect(h.worker(0, .credit, 1, CreditBody(bytes: 3).encoded()) == ["A ← CREDIT 1"])
        #expect(h.client(h.a, .data, 1, [1, 2, 3]) == ["w0 ← DATA 1"])
        #expect(h.client(h.b, .data, 1, [1]) == ["B ← ABORTED 1 unknown_stream"])  // not B's
    }

    // MARK: Draining

    @Test func shutdown_refusesNewRequests_stopsWorkersWhenIdle_andKillsLateOnes() throws {
        var h = Harness()
        h.running()
        let peer = try Self.peers(onShard: 0)[0]
        _ = h.open(h.a, 1, to: peer)
        #expect(h.describe(h.state.beginShutdown(now: h.now)).isEmpty)
        #expect(h.open(h.a, 2, to: peer) == ["A ← ERROR 2 shutting_down"])
        #expect(h.worker(0, .error, 1, WireError(.timeout, "x").jsonBody) == ["A ← ERROR 1 timeout"])
        #expect(h.tick() == ["stop w0", "tick +3000ms", "stop w1", "tick +3000ms"])
        #expect(h.describe(h.state.workerExited(shard: 1, .terminated(ProcessTermination(exitCode: 0, signal: nil)), now: h.now)).isEmpty)
        h.advance(.seconds(3))
        #expect(h.tick() == ["kill w0 stopTimeout"])
        #expect(h.crashed(0) == ["all stopped"])
    }
}
