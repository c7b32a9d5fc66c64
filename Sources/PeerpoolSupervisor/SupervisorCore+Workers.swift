import Foundation
import PeerpoolWire
import PeerpoolWorker

#if canImport(Glibc)
import Glibc
#endif

/// Worker processes: start, readiness, death, hang detection, restart intensity and backoff.
extension SupervisorCore {
    func spawn(_ shard: Shard) {
        shard.generation += 1
        let routingID = Array(WorkerSettings.routingID(index: shard.index, generation: shard.generation).utf8)
        let settings = WorkerSettings(
            index: shard.index, generation: shard.generation, backendEndpoint: runtime.backendEndpoint,
            supervisorPID: getpid(), heartbeatInterval: configuration.heartbeatInterval, secretKeys: identities,
            receiveWindow: configuration.defaultWindow, addressBook: configuration.addressBook, pool: configuration.pool,
            maxWindow: configuration.maxWindow, maxRequestTimeout: configuration.maxRequestTimeout
        )
        var input = (try? JSONEncoder().encode(settings)).map { [UInt8]($0) } ?? []
        input.append(UInt8(ascii: "\n"))
        let process: SpawnedProcess
        do {
            process = try SpawnedProcess.spawn(
                executable: workerCommand[0],
                arguments: Array(workerCommand.dropFirst()) + ["--supervisor-pid", String(getpid()), "--log-level", logger.logLevel.rawValue],
                environment: Self.workerEnvironment(),
                standardInput: input
            )
        } catch {
            logger.error("shard \(shard.index): \(error)")
            shard.state = .stopped
            workerGone(shard, ProcessTermination(exitCode: 127, signal: nil), spawnError: "\(error)")
            return
        }
        shard.process = process
        shard.routingID = routingID
        shardsByRoutingID[routingID] = shard.index
        shard.state = .starting
        shard.spawnedAt = .now
        shard.readyAt = nil
        shard.lastHeartbeat = nil
        shard.killReason = nil
        shard.heartbeat = HeartbeatBody()
        logger.info("shard \(shard.index): worker started, pid \(process.pid), generation \(shard.generation)")
        reactor.watch(descriptor: process.exitDescriptor) { [self, shard] in
            guard let process = shard.process, let termination = process.reap() else { return }
            reactor.unwatch(descriptor: process.exitDescriptor)
            process.close()
            shard.process = nil
            workerGone(shard, termination, spawnError: nil)
        }
    }

    /// Ours, plus `SWIFT_BACKTRACE=enable=no` unless the operator set SWIFT_BACKTRACE: the
    /// supervisor logs how a worker died (signal or exit status) and restarts it at once,
    /// while the runtime's crash reporter would hold the dying worker for seconds (long enough
    /// to be killed as hung) and print into our standard error.
    static func workerEnvironment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        return environment
    }

    func workerReady(_ shard: Shard) {
        guard shard.state == .starting else { return }
        shard.state = .running
        shard.readyAt = .now
        shard.lastHeartbeat = .now
        logger.info("shard \(shard.index): worker ready")
        let queued = shard.queued
        shard.queued = []
        for id in queued {
            guard var open = opens[id], let body = open.body else { continue }
            if forwardToWorker(shard, header: ZMQFrame(WireHeader(.open, id: id).bytes), body: body) {
                open.body = nil
                open.sentTo = shard.generation
                opens[id] = open
            }
        }
    }

    /// A worker's process ended (or never started). Everything it held fails now, with the
    /// reason; requests queued for the shard keep waiting for the replacement.
    func workerGone(_ shard: Shard, _ termination: ProcessTermination, spawnError: String?) {
        if let routingID = shard.routingID { shardsByRoutingID[routingID] = nil }
        shard.routingID = nil
        let wasStopping = shard.state == .stopping || draining
        let error: WireError
        if wasStopping {
            error = WireError(.shuttingDown, "the supervisor shut down; shard \(shard.index)'s worker \(termination)")
        } else if let reason = shard.killReason {
            error = WireError(WireError.Code(rawValue: reason.code), "shard \(shard.index): \(reason.message)")
        } else if let spawnError {
            error = WireError(.workerCrashed, "shard \(shard.index): the worker could not be started: \(spawnError)")
        } else {
            error = WireError(.workerCrashed, "shard \(shard.index)'s worker \(termination)")
        }
        logger.log(level: wasStopping ? .info : .error, "shard \(shard.index): worker \(termination)")
        // Requests the worker had: fail. Requests still queued: keep (they wait for the restart).
        for id in shard.opens {
            guard let open = opens[id], open.sentTo != nil else { continue }
            opens[id] = nil
            shard.opens.remove(id)
            clients[open.client]?.requests[open.requestID] = nil
            sendError(open.client, id: open.requestID, WireError(error.code, error.message, id: open.requestID))
        }
        for id in shard.streams {
            guard let route = routes.removeValue(forKey: id) else { continue }
            clients[route.client]?.streams.remove(id)
            sendAborted(route.client, stream: id, error)
        }
        shard.streams = []
        if wasStopping {
            shard.state = .stopped
            checkDrain(now: .now)
            return
        }
        restart(shard)
    }

    /// OTP-style intensity: up to `maxRestarts` restarts within `restartWindow` happen at once;
    /// beyond that the shard backs off (doubling from `initialBackoff` up to `maxBackoff`) and
    /// its requests fail fast with `worker_unavailable` meanwhile.
    private func restart(_ shard: Shard) {
        let now = ContinuousClock.now
        shard.restarts += 1
        shard.recentRestarts.removeAll { $0 + configuration.restartWindow < now }
        shard.recentRestarts.append(now)
        guard shard.recentRestarts.count > configuration.maxRestarts else {
            spawn(shard)
            return
        }
        shard.backoffLevel += 1
        var delay = configuration.initialBackoff
        for _ in 1..<shard.backoffLevel where delay < configuration.maxBackoff { delay *= 2 }
        delay = min(delay, configuration.maxBackoff)
        let until = now + delay
        shard.state = .backoff(until: until)
        logger.error("shard \(shard.index): \(shard.recentRestarts.count) restarts within \(configuration.restartWindow); backing off for \(delay)")
        let queued = shard.queued
        shard.queued = []
        for id in queued {
            guard let open = opens.removeValue(forKey: id) else { continue }
            shard.opens.remove(id)
            clients[open.client]?.requests[open.requestID] = nil
            sendError(open.client, id: open.requestID, WireError(.workerUnavailable, shard.unavailableMessage(until: until)))
        }
        reactor.schedule(at: until) { [self, shard] in
            guard case .backoff = shard.state, !draining else { return }
            spawn(shard)
        }
    }

    /// Called every tick: a running worker silent for `hangTimeout` is killed as hung; a worker
    /// that has not said HELLO within `startTimeout` is killed as failed to start; a shard that
    /// has run cleanly for a whole `restartWindow` forgets its backoff level.
    /// A running worker whose last heartbeat is older than `hangTimeout`.
    func isSilent(_ shard: Shard, now: ContinuousClock.Instant) -> Bool {
        guard shard.state == .running, let last = shard.lastHeartbeat else { return false }
        return last + configuration.hangTimeout < now
    }

    func checkHealth(_ shard: Shard, now: ContinuousClock.Instant) {
        switch shard.state {
        case .running:
            if isSilent(shard, now: now), shard.killReason == nil {
                shard.killReason = (WireError.Code.workerHung.rawValue, "worker (pid \(shard.process.map { String($0.pid) } ?? "?")) sent no heartbeat for \(configuration.hangTimeout); killed it with SIGKILL")
                logger.error("shard \(shard.index): worker hung (no heartbeat for \(configuration.hangTimeout)); killing it")
                shard.process?.signalGroup(SIGKILL)
            }
            if shard.backoffLevel > 0, let ready = shard.readyAt, ready + configuration.restartWindow < now {
                shard.backoffLevel = 0
            }
        case .starting:
            if let spawned = shard.spawnedAt, spawned + configuration.startTimeout < now, shard.killReason == nil {
                shard.killReason = (WireError.Code.workerCrashed.rawValue, "worker did not become ready within \(configuration.startTimeout); killed it")
                shard.process?.signalGroup(SIGKILL)
            }
        default:
            break
        }
    }

    // MARK: Draining

    /// Graceful shutdown: no new requests; what runs gets `shutdownGracePeriod`; then workers get
    /// SHUTDOWN, and are killed if they have not exited a few seconds later.
    func beginShutdown() {
        guard !draining else { return }
        draining = true
        drainDeadline = .now + configuration.shutdownGracePeriod
        logger.info("draining: \(opens.count) requests, \(routes.count) streams")
        for shard in shards {
            if case .backoff = shard.state { shard.state = .stopped }
            for id in shard.queued {
                guard let open = opens.removeValue(forKey: id) else { continue }
                shard.opens.remove(id)
                clients[open.client]?.requests[open.requestID] = nil
                sendError(open.client, id: open.requestID, WireError(.shuttingDown, "the supervisor is shutting down"))
            }
            shard.queued = []
        }
        checkDrain(now: .now)
    }

    func checkDrain(now: ContinuousClock.Instant) {
        guard draining else { return }
        let idle = opens.isEmpty && routes.isEmpty
        if idle || (drainDeadline.map { $0 <= now } ?? true) {
            for shard in shards where shard.state == .running || shard.state == .starting {
                shard.state = .stopping
                if !sendToWorker(shard, WireHeader(.shutdown, id: 0), body: ShutdownBody(graceMilliseconds: 1000).encoded()) {
                    shard.process?.signal(SIGTERM)
                }
                let generation = shard.generation
                reactor.schedule(after: .seconds(3)) { [shard] in
                    if shard.generation == generation, shard.state == .stopping { shard.process?.signalGroup(SIGKILL) }
                }
            }
            drainDeadline = nil
        }
        if shards.allSatisfy({ $0.state == .stopped }) {
            let handlers = stoppedHandlers
            stoppedHandlers = []
            for handler in handlers { handler() }
        }
    }
}
