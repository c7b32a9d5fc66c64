import CLinuxProcess
import CZMQ
import Foundation
import Logging
import PeerpoolIdentity
import PeerpoolWire

/// The supervisor's socket layer, on its reactor thread: reads the frontend (clients), the
/// backend (workers) and the frontend's monitor, feeds what arrives to `SupervisorRoutingState`,
/// and performs the actions it answers with (sends, spawns, kills, timers).
///
/// Not `Sendable`: it lives in a `ReactorBound` (the `Supervisor` holds it so), which checks
/// that only the reactor thread touches it, and other threads reach it through that box's
/// `run`/`execute`. The forwarding path (DATA, CREDIT, FINISH) does a dictionary lookup, a
/// credit check and zero-copy sends of the bodies it received.
final class SupervisorCore {
    typealias ClientKey = SupervisorRoutingState.ClientKey
    typealias Action = SupervisorRoutingState.Action

    /// A connected client, as the socket layer sees it (what it holds is the routing's).
    struct Client {
        /// The connection's file descriptor (ZMQ_SRCFD), to match the monitor's disconnects.
        var descriptor: Int32
    }

    /// A shard's current worker process.
    struct WorkerProcess {
        /// Owned: its pidfd is watched by the reactor; closed after the exit is handled.
        let process: SpawnedProcess
        /// Its ZeroMQ routing id.
        let routingID: [UInt8]
    }

    let configuration: SupervisorConfiguration
    let identities: [SecretKey]
    let runtime: RuntimeDirectory
    let workerCommand: [String]
    let reactor: ZMQReactor
    let context: ZMQContext
    var logger: Logger
    let startedAt = ContinuousClock.now

    var routing: SupervisorRoutingState
    var frontend: ZMQSocket!
    var backend: ZMQSocket!
    var frontendMonitor: ZMQSocket!
    var clients: [ClientKey: Client] = [:]
    var clientsByDescriptor: [Int32: Set<ClientKey>] = [:]
    /// Frontend connections open now, by file descriptor, from the monitor's ACCEPTED and
    /// DISCONNECTED events: tells a new client from a late message of one already gone.
    var liveDescriptors: Set<Int32> = []
    /// By shard; nil while a shard has no process.
    var workers: [WorkerProcess?]
    var shardsByRoutingID: [[UInt8]: Int] = [:]
    var stoppedHandlers: [() -> Void] = []
    var tickTimer: ZMQReactor.Timer?
    /// Clients dropped because they did not read their replies; told so on their next message.
    /// Bounded (oldest forgotten first).
    var overrunClients: [ClientKey] = []
    var overrunCount = 0
    /// Where the routing's metric events go (thread-safe; rendered by `Supervisor.metricsText()`).
    let metrics: SupervisorMetrics
    /// The most requests + streams held since the heap was last trimmed.
    var heldPeak = 0

    static let maxFrame: Int64 = 16 * 1_048_576 + 64
    /// Messages queued toward one client. Past it the client is not reading: it is dropped
    /// (see `dropUnreachable`).
    /// 50,000: far more than a client that reads as replies come ever has queued (its requests
    /// are bounded, its streams' data by their windows), and at a STATUS reply's size about
    /// 20 MB for one that never reads.
    static let frontendHighWaterMark: Int32 = 50_000
    /// Messages read ahead from one client. Past it libzmq stops reading that client's
    /// connection (the client's own sends then wait): its backlog stays in its own process,
    /// not in the supervisor's memory, and other clients are read as before.
    static let frontendReceiveHighWaterMark: Int32 = 1_000
    /// How often the routing's `tick` runs besides the instants it asks for.
    static let tickInterval: Duration = .milliseconds(50)

    init(
        configuration: SupervisorConfiguration, identities: [SecretKey], workerCommand: [String],
        reactor: ZMQReactor, context: ZMQContext, metrics: SupervisorMetrics, logger: Logger
    ) {
        self.metrics = metrics
        self.configuration = configuration
        self.identities = identities
        self.runtime = RuntimeDirectory(path: configuration.runtimeDirectory)
        self.workerCommand = workerCommand
        self.reactor = reactor
        self.context = context
        self.logger = logger
        self.routing = SupervisorRoutingState(
            configuration: configuration, identities: Set(identities.map(\.id52)), logger: logger, now: .now
        )
        self.workers = Array(repeating: nil, count: configuration.workers)
    }

    // MARK: Start

    /// Binds the sockets and starts every worker. *Reactor thread.*
    func start() throws {
        precondition(reactor.isOnReactorThread)
        let frontend = try ZMQSocket(context, .router)
        try frontend.setOption(ZMQ_ROUTER_MANDATORY, 1)
        try frontend.setOption(ZMQ_SNDHWM, Self.frontendHighWaterMark)
        try frontend.setOption(ZMQ_RCVHWM, Self.frontendReceiveHighWaterMark)
        try frontend.setOption(ZMQ_MAXMSGSIZE, int64: Self.maxFrame)
        let backend = try ZMQSocket(context, .router)
        try backend.setOption(ZMQ_ROUTER_MANDATORY, 1)
        // No high-water mark toward workers on purpose: at one a ROUTER_MANDATORY send fails,
        // and a lost CANCEL, RESET or CREDIT would strand a stream. What is queued is bounded
        // anyway: OPENs by the per-client request limits and the 64 KiB body limit, stream data
        // by the windows, and the frontend reads at most 1,000 messages ahead per client.
        try backend.setOption(ZMQ_SNDHWM, 0)
        try backend.setOption(ZMQ_RCVHWM, 0)
        let monitor = try frontend.monitor(
            context, events: ZMQMonitorEvent.accepted | ZMQMonitorEvent.disconnected, name: "supervisor-frontend-\(getpid())")
        do {
            try backend.bind(runtime.backendEndpoint)
            try frontend.bind(runtime.frontendEndpoint)
        } catch {
            throw SupervisorError(.socket, "cannot bind the supervisor's sockets in \(runtime.path): \(error)")
        }
        self.frontend = frontend
        self.backend = backend
        self.frontendMonitor = monitor
        reactor.watch(frontend) { [self] in readFrontend() }
        reactor.watch(backend) { [self] in readBackend() }
        reactor.watch(monitor) { [self] in readMonitor() }
        reactor.onShutdown { [self] in
            for worker in workers.compactMap({ $0 }) { worker.process.signalGroup(SIGKILL); worker.process.close() }
            monitor.close()
            frontend.close()
            backend.close()
        }
        perform(routing.start(now: .now))
        scheduleTick()
    }

    // MARK: Actions

    /// Performs the routing's actions in order. A send to a client that fails drops the client,
    /// which the routing answers with more actions (performed at once).
    func perform(_ actions: [Action]) {
        for metric in routing.takeMetrics() { metrics.record(metric) }
        for action in actions {
            switch action {
            case .sendToClient(let key, let header, let body):
                let routed = trySendToClient(key, header, body)
                if routed != .sent { dropUnreachable(key, routed) }
            case .sendToWorker(let shard, let header, let body):
                sendToWorker(shard, header, body)
            case .replyStatus(let key, let requestID):
                perform([.sendToClient(key, WireHeader(.statusReply, id: requestID), .bytes(status().encoded()))])
            case .spawnWorker(let shard, let generation):
                spawn(shard, generation: generation)
            case .killWorker(let shard, _):
                workers[shard]?.process.signalGroup(SIGKILL)
            case .stopWorker(let shard):
                if !sendToWorker(shard, WireHeader(.shutdown, id: 0), .bytes(ShutdownBody(graceMilliseconds: 1000).encoded())) {
                    workers[shard]?.process.signal(SIGTERM)
                }
            case .scheduleTick(let instant):
                reactor.schedule(at: instant) { [self] in tick() }
            case .allWorkersStopped:
                let handlers = stoppedHandlers
                stoppedHandlers = []
                for handler in handlers { handler() }
            }
        }
    }

    // MARK: Sending

    /// Sends, and only says how it went (the caller drops a client that cannot be reached).
    func trySendToClient(_ key: ClientKey, _ header: WireHeader, _ body: Action.Body) -> ZMQSocket.SendResult {
        let routed = frontend.send(key.routingID, more: true)
        guard routed == .sent else { return routed }
        send(frontend, header, body)
        return .sent
    }

    /// Sends to a shard's current worker; false when it has none (the message is dropped: the
    /// worker is gone and everything it held has failed already, or will when its exit is read).
    @discardableResult
    func sendToWorker(_ shard: Int, _ header: WireHeader, _ body: Action.Body) -> Bool {
        guard let routingID = workers[shard]?.routingID, backend.send(routingID, more: true) == .sent else { return false }
        send(backend, header, body)
        return true
    }

    /// Header and body after the routing frame; a frame body goes without a copy.
    private func send(_ socket: ZMQSocket, _ header: WireHeader, _ body: Action.Body) {
        switch body {
        case .none:
            socket.send(header, more: false)
        case .bytes(let bytes):
            socket.send(header, more: true)
            socket.send(bytes, more: false)
        case .frame(let frame):
            socket.send(header, more: true)
            socket.send(frame, more: false)
        }
    }

    /// A reply could not be queued: the client is gone, or it has not read the last
    /// `frontendHighWaterMark` messages. Nothing else can reach it, so it is dropped with all
    /// it had open (its workers stop working for it), counted, logged, and told so with ERROR
    /// `client_overrun` should it send again.
    private func dropUnreachable(_ key: ClientKey, _ result: ZMQSocket.SendResult) {
        guard clients[key] != nil else { return }
        guard result == .wouldBlock else {
            // Gone (EHOSTUNREACH): its disconnect event is on its way, or was applied before
            // this late message of its.
            return dropClient(key)
        }
        // Counted once per overrun (an overrun client is not served again until it was told).
        guard !overrunClients.contains(key) else { return dropClient(key) }
        overrunCount += 1
        let held = routing.holdings(of: key)
        logger.warning("client not reading (its queue is full); dropping it and its streams", metadata: [
            "client.requests": "\(held.requests)", "client.streams": "\(held.streams)",
            "supervisor.clients_overrun": "\(overrunCount)",
        ])
        if overrunClients.count >= 1_024 { overrunClients.removeFirst(overrunClients.count - 1_023) }
        overrunClients.append(key)
        dropClient(key)
    }

    // MARK: Clients

    /// Registers the client a message came from on its first message; returns false for a
    /// message that outlived its connection (the client is gone: answer it, then forget it).
    ///
    /// Why the monitor is read first: a client is tied to its connection's file descriptor
    /// (ZMQ_SRCFD), and the kernel gives a new connection the lowest free one, often the one
    /// a client that just left had. libzmq queues a connection's DISCONNECTED event before it
    /// closes the descriptor, so before any new connection can have it; but the events arrive
    /// on another socket, which this thread may read after the new client's first message.
    /// Registering the newcomer before reading that event tied it to the old connection's
    /// disconnect, which then dropped it with its first request, unanswered.
    func registerClient(_ key: ClientKey, header: ZMQFrame) -> Bool {
        if clients[key] != nil { return true }
        readMonitor()
        let descriptor = header.sourceDescriptor
        clients[key] = Client(descriptor: descriptor)
        clientsByDescriptor[descriptor, default: []].insert(key)
        // No descriptor (a transport without one): nothing to tell, take it as live.
        return descriptor < 0 || liveDescriptors.contains(descriptor)
    }

    /// Forgets a client whose connection closed, with everything it had waiting or open.
    func dropClient(_ key: ClientKey) {
        guard let client = clients.removeValue(forKey: key) else { return }
        clientsByDescriptor[client.descriptor]?.remove(key)
        if clientsByDescriptor[client.descriptor]?.isEmpty == true { clientsByDescriptor[client.descriptor] = nil }
        perform(routing.clientDisconnected(key, now: .now))
    }

    /// Applies every queued monitor event, in order. Bounded by what libzmq queued.
    func readMonitor() {
        while let event = try? ZMQMonitorEvent.read(frontendMonitor) {
            if event.event == ZMQMonitorEvent.accepted {
                liveDescriptors.insert(event.value)
                continue
            }
            guard event.event == ZMQMonitorEvent.disconnected else { continue }
            liveDescriptors.remove(event.value)
            guard let keys = clientsByDescriptor[event.value] else { continue }
            for key in keys { dropClient(key) }
        }
    }

    // MARK: Ticks

    private func scheduleTick() {
        tickTimer = reactor.schedule(after: Self.tickInterval) { [self] in
            tick()
            scheduleTick()
        }
    }

    /// The routing's tick. Heartbeats already queued are read first when a worker looks hung.
    private func tick() {
        if routing.wouldJudgeSilentWorkers(now: .now) { readBackend() }
        perform(routing.tick(now: .now))
        trimHeapAfterBurst()
    }

    /// glibc keeps freed memory in its arenas: after a burst of requests the supervisor's
    /// resident size would stay at the burst's peak. Once what is held has fallen to a quarter
    /// of a peak of at least 1,000 requests and streams, give the memory back (one malloc_trim).
    private func trimHeapAfterBurst() {
        let held = routing.opens.count + routing.streams.count
        heldPeak = max(heldPeak, held)
        guard heldPeak >= 1_000, held * 4 <= heldPeak else { return }
        heldPeak = held
        pp_malloc_trim()
    }
}
