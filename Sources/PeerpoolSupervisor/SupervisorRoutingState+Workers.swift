import Foundation
import PeerpoolProcess
import PeerpoolWire

/// Workers: answers to opens, stream traffic toward clients, HELLO and heartbeats; exits and
/// restart intensity; hang and start timeouts; draining.
extension SupervisorRoutingState {
    /// One shard's worker as the routing sees it (the process itself is the driver's).
    struct WorkerRecord {
        enum State: Equatable {
            /// Spawned, not yet said HELLO: requests queue (up to their timeout).
            case starting
            case running
            /// Restarting too often: requests fail fast with `worker_unavailable` until then.
            case backoff(until: Instant)
            /// Told to stop; killed at `killAt` if still running (nil once killed).
            case stopping(killAt: Instant?)
            case stopped

            var name: String {
                switch self {
                case .starting: "starting"
                case .running: "running"
                case .backoff: "backoff"
                case .stopping: "stopping"
                case .stopped: "stopped"
                }
            }

            var isStopping: Bool {
                if case .stopping = self { return true }
                return false
            }
        }

        let index: Int
        var state: State = .stopped
        var generation = 0
        /// The current worker's process id, nil while it has none.
        var pid: Int32?
        var spawnedAt: Instant?
        var readyAt: Instant?
        var lastHeartbeat: Instant?
        /// Why we killed the current worker, if we did: reported instead of the bare signal.
        var killReason: WireError?
        /// Restarts within the intensity window (OTP's MaxR in MaxT).
        var recentRestarts: [Instant] = []
        var backoffLevel = 0
        var restarts = 0
        var heartbeat = HeartbeatBody()

        func unavailableMessage(until: Instant, now: Instant) -> String {
            let left = until - now
            let seconds = max(0, Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)
            return "shard \(index)'s worker is restarting too often (\(recentRestarts.count) restarts recently); next attempt in \(String(format: "%.1f", seconds)) s"
        }
    }

    /// How a worker's process ended.
    enum WorkerExit {
        case terminated(ProcessTermination)
        /// It could not be started at all.
        case spawnFailed(String)
    }

    // MARK: Worker messages

    /// A message from shard `shard`'s current worker.
    mutating func receivedFromWorker(shard: Int, _ header: WireHeader, body: ZMQFrame?, now: Instant) -> [Action] {
        var actions: [Action] = []
        switch header.type {
        case .data, .finish, .credit, .aborted:
            guard let route = streams[header.id] else { return actions }  // the client reset or left
            if header.type == .credit, let credit = try? CreditBody(frame: body) {
                streams.update(header.id) { $0.clientCredit += Int(credit.bytes) }
            } else if header.type == .data, let body {
                record(.data(shard: route.shard, toPeer: false, bytes: body.count))
            }
            actions.append(.sendToClient(route.client, header, Action.Body(body)))
            if header.type == .aborted {
                streams.remove(header.id)
            } else if header.type == .finish {
                let done = streams.update(header.id) { route in
                    route.workerFinished = true
                    return route.clientFinished
                }
                if done == true { streams.remove(header.id) }
            }
        case .opened:
            // Cancelled or timed out meanwhile (or a body that is not OPENED's): the stream has
            // nobody to go to.
            guard let open = opens.remove(header.id), let opened = try? OpenedBody(frame: body) else {
                actions.append(.sendToWorker(shard: shard, WireHeader(.reset, id: header.id), .bytes(ResetBody.abandoned.encoded())))
                return actions
            }
            streams.insert(Route(client: open.client, stream: header.id, remote: open.remote, shard: shard, clientCredit: Int(opened.sendWindow)), id: header.id)
            record(.opened(shard: shard, latency: now - open.arrived))
            actions.append(.sendToClient(open.client, WireHeader(.opened, id: open.requestID), Action.Body(body)))
        case .error:
            guard let open = opens.remove(header.id) else { return actions }
            let code = body.map { frame in frame.withUnsafeBytes { WireError(jsonBody: $0).code.name } }
            record(.failed(shard: shard, code: code ?? WireError.Code.protocolViolation.name))
            actions.append(.sendToClient(open.client, WireHeader(.error, id: open.requestID), Action.Body(body)))
        case .hello:
            workerReady(shard, now: now, &actions)
        case .heartbeat:
            workers[shard].lastHeartbeat = now
            if let beat = try? HeartbeatBody(frame: body) {
                workers[shard].heartbeat = beat
            }
        default:
            logger.warning("worker \(shard) sent \(header.type); ignored")
        }
        return actions
    }

    private mutating func workerReady(_ shard: Int, now: Instant, _ actions: inout [Action]) {
        guard workers[shard].state == .starting else { return }
        workers[shard].state = .running
        workers[shard].readyAt = now
        workers[shard].lastHeartbeat = now
        logger.info("shard \(shard): worker ready")
        let generation = workers[shard].generation
        for id in opens.ids(on: shard) {
            let body = opens.update(id) { open -> ZMQFrame? in
                guard open.sentTo == nil, let body = open.body else { return nil }
                open.body = nil
                open.sentTo = generation
                return body
            }
            if let body = body ?? nil { actions.append(.sendToWorker(shard: shard, WireHeader(.open, id: id), .frame(body))) }
        }
    }

    // MARK: Processes

    /// The driver spawned shard `shard`'s worker (the `spawnWorker` action).
    mutating func workerStarted(shard: Int, pid: Int32) {
        workers[shard].pid = pid
        logger.info("shard \(shard): worker started, pid \(pid), generation \(workers[shard].generation)")
    }

    /// A worker's process ended (or never started). Everything it held fails now, with the
    /// reason; requests queued for the shard keep waiting for the replacement.
    mutating func workerExited(shard: Int, _ exit: WorkerExit, now: Instant) -> [Action] {
        var actions: [Action] = []
        let worker = workers[shard]
        workers[shard].pid = nil
        let wasStopping = worker.state.isStopping || draining
        let error: WireError
        switch exit {
        case .terminated(let termination):
            logger.log(level: wasStopping ? .info : .error, "shard \(shard): worker \(termination)")
            if wasStopping {
                error = WireError(.shuttingDown, "the supervisor shut down; shard \(shard)'s worker \(termination)")
            } else if let reason = worker.killReason {
                error = WireError(reason.code, "shard \(shard): \(reason.message)")
            } else {
                error = WireError(.workerCrashed, "shard \(shard)'s worker \(termination)")
            }
        case .spawnFailed(let why):
            logger.error("shard \(shard): \(why)")
            error = wasStopping
                ? WireError(.shuttingDown, "the supervisor shut down; shard \(shard)'s worker could not be started: \(why)")
                : WireError(.workerCrashed, "shard \(shard): the worker could not be started: \(why)")
        }
        // Requests the worker had: fail. Requests still queued: keep (they wait for the restart).
        for id in opens.ids(on: shard) where opens[id]?.sentTo != nil {
            guard let open = opens.remove(id) else { continue }
            failOpen(open, error, &actions)
        }
        for id in streams.ids(on: shard) {
            guard let route = streams.remove(id) else { continue }
            actions.sendAborted(route.client, stream: id, error)
        }
        if wasStopping {
            workers[shard].state = .stopped
            checkDrain(now: now, &actions)
            return actions
        }
        restart(shard, now: now, &actions)
        return actions
    }

    mutating func spawn(_ shard: Int, now: Instant, _ actions: inout [Action]) {
        workers[shard].generation += 1
        workers[shard].state = .starting
        workers[shard].spawnedAt = now
        workers[shard].readyAt = nil
        workers[shard].lastHeartbeat = nil
        workers[shard].killReason = nil
        workers[shard].heartbeat = HeartbeatBody()
        actions.append(.spawnWorker(shard: shard, generation: workers[shard].generation))
    }

    /// OTP-style intensity: up to `maxRestarts` restarts within `restartWindow` happen at once;
    /// beyond that the shard backs off (doubling from `initialBackoff` up to `maxBackoff`) and
    /// its requests fail fast with `worker_unavailable` meanwhile.
    private mutating func restart(_ shard: Int, now: Instant, _ actions: inout [Action]) {
        workers[shard].restarts += 1
        let window = configuration.restartWindow
        workers[shard].recentRestarts.removeAll { $0 + window < now }
        workers[shard].recentRestarts.append(now)
        guard workers[shard].recentRestarts.count > configuration.maxRestarts else {
            return spawn(shard, now: now, &actions)
        }
        workers[shard].backoffLevel += 1
        var delay = configuration.initialBackoff
        for _ in 1..<workers[shard].backoffLevel where delay < configuration.maxBackoff { delay *= 2 }
        delay = min(delay, configuration.maxBackoff)
        let until = now + delay
        workers[shard].state = .backoff(until: until)
        logger.error("shard \(shard): \(workers[shard].recentRestarts.count) restarts within \(configuration.restartWindow); backing off for \(delay)")
        // Every open left on the shard is queued (the sent ones failed with the worker).
        let message = workers[shard].unavailableMessage(until: until, now: now)
        for id in opens.ids(on: shard) {
            guard let open = opens.remove(id) else { continue }
            failOpen(open, WireError(.workerUnavailable, message), &actions)
        }
        actions.append(.scheduleTick(at: until))
    }

    // MARK: Time

    /// Judge workers only on a loop that has been keeping time: after a long stall of our own
    /// (a burst of work on the driver's thread) the heartbeats are late because nobody read them.
    private func isPunctual(now: Instant) -> Bool {
        now - lastTick < configuration.hangTimeout / 4
    }

    /// A running worker whose last heartbeat is older than `hangTimeout`.
    private func isSilent(_ worker: WorkerRecord, now: Instant) -> Bool {
        guard worker.state == .running, let last = worker.lastHeartbeat else { return false }
        return last + configuration.hangTimeout < now
    }

    /// True when `tick(now:)` would judge a worker hung: the driver should read the workers'
    /// queued messages (heartbeats) first.
    func wouldJudgeSilentWorkers(now: Instant) -> Bool {
        isPunctual(now: now) && workers.contains { isSilent($0, now: now) }
    }

    /// Call every few tens of milliseconds, and at each `scheduleTick` instant: hung and
    /// slow-starting workers, backoffs that are over, expired requests, the end of a drain.
    mutating func tick(now: Instant) -> [Action] {
        var actions: [Action] = []
        let punctual = isPunctual(now: now)
        lastTick = now
        for shard in workers.indices {
            if punctual { checkHealth(shard, now: now, &actions) }
            switch workers[shard].state {
            case .backoff(let until) where until <= now && !draining:
                spawn(shard, now: now, &actions)
            case .stopping(let killAt?) where killAt <= now:
                workers[shard].state = .stopping(killAt: nil)
                actions.append(.killWorker(shard: shard, .stopTimeout))
            default:
                break
            }
        }
        // A worker enforces the deadline itself; the supervisor steps in a little later for one
        // that cannot answer, and at once for requests still queued here.
        var expired: [UInt64] = []
        for entry in openDeadlines.popDue(now: now) {
            guard let open = opens[entry.id] else { continue }  // answered before its deadline
            let failAt = open.sentTo == nil ? open.deadline : open.deadline + Self.workerDeadlineSlack
            if failAt <= now {
                expired.append(entry.id)
            } else {
                openDeadlines.add(failAt, id: entry.id)
            }
        }
        openDeadlines.compact(liveCount: opens.count) {
            opens.records.map { OpenDeadlines.Entry(deadline: $0.value.deadline, id: $0.key) }
        }
        for id in expired.sorted() {
            guard let open = opens.remove(id) else { continue }
            if open.sentTo != nil { actions.append(.sendToWorker(shard: open.shard, WireHeader(.cancel, id: id), .none)) }
            let waited = open.sentTo == nil ? " waiting for shard \(open.shard)'s worker to start" : ""
            failOpen(open, WireError(.timeout, "no answer within the request's timeout\(waited)"), &actions)
        }
        if draining { checkDrain(now: now, &actions) }
        return actions
    }

    /// A running worker silent for `hangTimeout` is killed as hung; a worker that has not said
    /// HELLO within `startTimeout` is killed as failed to start; a shard that has run cleanly for
    /// a whole `restartWindow` forgets its backoff level.
    private mutating func checkHealth(_ shard: Int, now: Instant, _ actions: inout [Action]) {
        let worker = workers[shard]
        switch worker.state {
        case .running:
            if isSilent(worker, now: now), worker.killReason == nil {
                let pid = worker.pid.map { String($0) } ?? "?"
                workers[shard].killReason = WireError(.workerHung, "worker (pid \(pid)) sent no heartbeat for \(configuration.hangTimeout); killed it with SIGKILL")
                logger.error("shard \(shard): worker hung (no heartbeat for \(configuration.hangTimeout)); killing it")
                actions.append(.killWorker(shard: shard, .hung))
            }
            if worker.backoffLevel > 0, let ready = worker.readyAt, ready + configuration.restartWindow < now {
                workers[shard].backoffLevel = 0
            }
        case .starting:
            if let spawned = worker.spawnedAt, spawned + configuration.startTimeout < now, worker.killReason == nil {
                workers[shard].killReason = WireError(.workerCrashed, "worker did not become ready within \(configuration.startTimeout); killed it")
                actions.append(.killWorker(shard: shard, .startTimeout))
            }
        default:
            break
        }
    }

    // MARK: Draining

    /// Graceful shutdown: no new requests; what runs gets `shutdownGracePeriod`; then workers get
    /// SHUTDOWN, and are killed if they have not exited `stopTimeout` later.
    mutating func beginShutdown(now: Instant) -> [Action] {
        var actions: [Action] = []
        guard !draining else { return actions }
        draining = true
        drainDeadline = now + configuration.shutdownGracePeriod
        logger.info("draining: \(opens.count) requests, \(streams.count) streams")
        for shard in workers.indices {
            if case .backoff = workers[shard].state { workers[shard].state = .stopped }
            for id in opens.ids(on: shard) where opens[id]?.sentTo == nil {
                guard let open = opens.remove(id) else { continue }
                failOpen(open, WireError(.shuttingDown, "the supervisor is shutting down"), &actions)
            }
        }
        checkDrain(now: now, &actions)
        return actions
    }

    private mutating func checkDrain(now: Instant, _ actions: inout [Action]) {
        guard draining else { return }
        let idle = opens.isEmpty && streams.isEmpty
        if idle || (drainDeadline.map { $0 <= now } ?? true) {
            for shard in workers.indices where workers[shard].state == .running || workers[shard].state == .starting {
                let killAt = now + Self.stopTimeout
                workers[shard].state = .stopping(killAt: killAt)
                actions.append(.stopWorker(shard: shard))
                actions.append(.scheduleTick(at: killAt))
            }
            drainDeadline = nil
        }
        if workers.allSatisfy({ $0.state == .stopped }) {
            actions.append(.allWorkersStopped)
        }
    }
}
