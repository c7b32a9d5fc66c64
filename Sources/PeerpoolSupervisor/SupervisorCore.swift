import CLinuxProcess
import CZMQ
import Foundation
import Logging
import PeerpoolIdentity
import PeerpoolWire

/// Everything the supervisor knows, confined to its reactor thread: the clients, the requests
/// waiting for a worker, the open streams and the shards' processes.
///
/// `@unchecked Sendable` because the object is handed to the reactor once; after that every
/// method runs on the reactor thread (`reactor.execute`, socket handlers, timers), which the
/// entry points check. The forwarding path (DATA, CREDIT, FINISH) does a dictionary lookup, a
/// credit check and zero-copy sends of the frames it received.
final class SupervisorCore: @unchecked Sendable {
    struct ClientKey: Hashable {
        var routingID: [UInt8]
    }

    final class Client {
        let key: ClientKey
        /// The connection's file descriptor (ZMQ_SRCFD), to match the monitor's disconnects.
        var descriptor: Int32
        /// Request id → internal id of its open.
        var requests: [UInt64: UInt64] = [:]
        var streams: Set<UInt64> = []

        init(key: ClientKey, descriptor: Int32) {
            self.key = key
            self.descriptor = descriptor
        }
    }

    /// An OPEN not yet answered.
    struct Open {
        var client: ClientKey
        var requestID: UInt64
        var remote: ID52
        var shard: Int
        var deadline: ContinuousClock.Instant
        /// The body, kept until the worker has it (zero-copy forward).
        var body: ZMQFrame?
        /// The worker generation it was sent to; nil while queued for a starting worker.
        var sentTo: Int?
    }

    struct Route {
        var client: ClientKey
        var remote: ID52
        var shard: Int
        /// DATA bytes the client may still send before it needs CREDIT.
        var clientCredit: Int
        var clientFinished = false
        var workerFinished = false
    }

    let configuration: SupervisorConfiguration
    let identities: [SecretKey]
    let identitySet: Set<ID52>
    let runtime: RuntimeDirectory
    let workerCommand: [String]
    let shardMap: ShardMap
    let reactor: ZMQReactor
    let context: ZMQContext
    var logger: Logger
    let startedAt = ContinuousClock.now

    // Reactor-thread state.
    var frontend: ZMQSocket!
    var backend: ZMQSocket!
    var frontendMonitor: ZMQSocket!
    var clients: [ClientKey: Client] = [:]
    var clientsByDescriptor: [Int32: Set<ClientKey>] = [:]
    /// Frontend connections open now, by file descriptor, from the monitor's ACCEPTED and
    /// DISCONNECTED events: tells a new client from a late message of one already gone.
    var liveDescriptors: Set<Int32> = []
    var opens: [UInt64: Open] = [:]
    var routes: [UInt64: Route] = [:]
    var shards: [Shard] = []
    var shardsByRoutingID: [[UInt8]: Int] = [:]
    var nextID: UInt64 = 0
    var draining = false
    var drainDeadline: ContinuousClock.Instant?
    var stoppedHandlers: [() -> Void] = []
    var tickTimer: ZMQReactor.Timer?
    var lastTick = ContinuousClock.now
    /// Clients dropped because they did not read their replies; told so on their next message.
    /// Bounded (oldest forgotten first).
    var overrunClients: [ClientKey] = []
    var overrunCount = 0
    /// The most requests + streams held since the heap was last trimmed.
    var heldPeak = 0

    static let maxDataBody = 1_048_576
    /// OPEN's JSON body at most: the protocol line and extra line a peer accepts are 64 KiB
    /// together, so a larger OPEN could not succeed anyway (`frame_too_large`).
    static let maxOpenBody = 65_536
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

    init(
        configuration: SupervisorConfiguration, identities: [SecretKey], workerCommand: [String],
        reactor: ZMQReactor, context: ZMQContext, logger: Logger
    ) {
        self.configuration = configuration
        self.identities = identities
        self.identitySet = Set(identities.map(\.id52))
        self.runtime = RuntimeDirectory(path: configuration.runtimeDirectory)
        self.workerCommand = workerCommand
        self.shardMap = ShardMap(workerCount: configuration.workers)
        self.reactor = reactor
        self.context = context
        self.logger = logger
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
            for shard in shards { shard.process?.signalGroup(SIGKILL); shard.process?.close() }
            monitor.close()
            frontend.close()
            backend.close()
        }
        shards = (0..<configuration.workers).map { Shard(index: $0) }
        for shard in shards { spawn(shard) }
        scheduleTick()
    }

    func allocateID() -> UInt64 {
        nextID += 1
        return nextID
    }

    // MARK: Sending

    /// Sends header + optional body to a client. A client that is gone or no longer reads
    /// (its queue is at the high-water mark) is dropped with everything it had open.
    func sendToClient(_ key: ClientKey, _ header: WireHeader, body: [UInt8]? = nil) {
        let routed = trySendToClient(key, header, body: body)
        if routed != .sent { dropUnreachable(key, routed) }
    }

    /// Sends, and only says how it went (no dropping).
    func trySendToClient(_ key: ClientKey, _ header: WireHeader, body: [UInt8]? = nil) -> ZMQSocket.SendResult {
        let routed = frontend.send(key.routingID, more: true)
        guard routed == .sent else { return routed }
        frontend.send(header, more: body != nil)
        if let body { frontend.send(body, more: false) }
        return .sent
    }

    /// Forwards frames received elsewhere, without copying them.
    func forwardToClient(_ key: ClientKey, header: ZMQFrame, body: ZMQFrame?) {
        let routed = frontend.send(key.routingID, more: true)
        guard routed == .sent else { return dropUnreachable(key, routed) }
        frontend.send(header, more: body != nil)
        if let body { frontend.send(body, more: false) }
    }

    func sendError(_ key: ClientKey, id: UInt64, _ error: WireError) {
        sendToClient(key, WireHeader(.error, id: id), body: error.jsonBody)
    }

    func sendAborted(_ key: ClientKey, stream: UInt64, _ error: WireError) {
        sendToClient(key, WireHeader(.aborted, id: stream), body: error.jsonBody)
    }

    /// Sends to a shard's current worker; false when it has none (the message is dropped: the
    /// worker is gone and everything it held has failed already).
    @discardableResult
    func sendToWorker(_ shard: Shard, _ header: WireHeader, body: [UInt8]? = nil) -> Bool {
        guard let routingID = shard.routingID, sendRouting(backend, routingID) else { return false }
        backend.send(header, more: body != nil)
        if let body { backend.send(body, more: false) }
        return true
    }

    @discardableResult
    func forwardToWorker(_ shard: Shard, header: ZMQFrame, body: ZMQFrame?) -> Bool {
        guard let routingID = shard.routingID, sendRouting(backend, routingID) else { return false }
        backend.send(header, more: body != nil)
        if let body { backend.send(body, more: false) }
        return true
    }

    private func sendRouting(_ socket: ZMQSocket, _ routingID: [UInt8]) -> Bool {
        socket.send(routingID, more: true) == .sent
    }

    /// A reply could not be queued: the client is gone, or it has not read the last
    /// `frontendHighWaterMark` messages. Nothing else can reach it, so it is dropped with all
    /// it had open (its workers stop working for it), counted, logged, and told so with ERROR
    /// `client_overrun` should it send again.
    private func dropUnreachable(_ key: ClientKey, _ result: ZMQSocket.SendResult) {
        guard let client = clients[key] else { return }
        guard result == .wouldBlock else {
            // Gone (EHOSTUNREACH): its disconnect event is on its way, or was applied before
            // this late message of its.
            return dropClient(key)
        }
        // Counted once per overrun: a flooding client is re-registered and dropped again with
        // each message it sends while its queue stays full.
        guard !overrunClients.contains(key) else { return dropClient(key) }
        overrunCount += 1
        logger.warning("client not reading (its queue is full); dropping it and its streams", metadata: [
            "client.requests": "\(client.requests.count)", "client.streams": "\(client.streams.count)",
            "supervisor.clients_overrun": "\(overrunCount)",
        ])
        if overrunClients.count >= 1_024 { overrunClients.removeFirst(overrunClients.count - 1_023) }
        overrunClients.append(key)
        dropClient(key)
    }

    // MARK: Clients

    /// The client's requests waiting and streams open to `remote`. Counted only when the client
    /// holds at least `limit` of both together (else it cannot reach the limit): cheap for
    /// every client but one that holds many.
    func streamsAndOpens(of client: Client, to remote: ID52, limit: Int) -> Int {
        guard client.requests.count + client.streams.count >= limit else { return 0 }
        var count = 0
        for id in client.requests.values where opens[id]?.remote == remote { count += 1 }
        for id in client.streams where routes[id]?.remote == remote { count += 1 }
        return count
    }

    /// The client a message came from, registered on its first message; `live` is false for a
    /// message that outlived its connection (the client is gone: answer it, then forget it).
    ///
    /// Why the monitor is read first: a client is tied to its connection's file descriptor
    /// (ZMQ_SRCFD), and the kernel gives a new connection the lowest free one, often the one
    /// a client that just left had. libzmq queues a connection's DISCONNECTED event before it
    /// closes the descriptor, so before any new connection can have it; but the events arrive
    /// on another socket, which this thread may read after the new client's first message.
    /// Registering the newcomer before reading that event tied it to the old connection's
    /// disconnect, which then dropped it with its first request, unanswered.
    func client(for key: ClientKey, header: ZMQFrame) -> (client: Client, live: Bool) {
        if let client = clients[key] { return (client, true) }
        readMonitor()
        let descriptor = header.sourceDescriptor
        let client = Client(key: key, descriptor: descriptor)
        clients[key] = client
        clientsByDescriptor[descriptor, default: []].insert(key)
        // No descriptor (a transport without one): nothing to tell, take it as live.
        return (client, descriptor < 0 || liveDescriptors.contains(descriptor))
    }

    /// Forgets a client whose connection closed: its waiting requests are withdrawn from the
    /// workers and its streams reset, so nothing it opened outlives it.
    func dropClient(_ key: ClientKey) {
        guard let client = clients.removeValue(forKey: key) else { return }
        clientsByDescriptor[client.descriptor]?.remove(key)
        if clientsByDescriptor[client.descriptor]?.isEmpty == true { clientsByDescriptor[client.descriptor] = nil }
        for (_, internalID) in client.requests {
            guard let open = opens.removeValue(forKey: internalID) else { continue }
            shards[open.shard].opens.remove(internalID)
            if open.sentTo != nil { sendToWorker(shards[open.shard], WireHeader(.cancel, id: internalID)) }
        }
        for stream in client.streams {
            guard let route = routes.removeValue(forKey: stream) else { continue }
            shards[route.shard].streams.remove(stream)
            sendToWorker(shards[route.shard], WireHeader(.reset, id: stream), body: ResetBody.abandoned.encoded())
        }
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
        tickTimer = reactor.schedule(after: .milliseconds(50)) { [self] in
            tick()
            scheduleTick()
        }
    }

    /// Every 50 ms: hung and slow-starting workers, expired requests, the end of a drain.
    private func tick() {
        let now = ContinuousClock.now
        // Judge workers only on a loop that has been keeping time: after a long stall of our own
        // (a burst of work on this thread) the heartbeats are late because we did not read them.
        let punctual = now - lastTick < configuration.hangTimeout / 4
        lastTick = now
        if punctual {
            if shards.contains(where: { isSilent($0, now: now) }) { readBackend() }
            for shard in shards { checkHealth(shard, now: ContinuousClock.now) }
        }
        var expired: [UInt64] = []
        for (id, open) in opens where open.deadline <= now {
            // A worker enforces the deadline itself; the supervisor steps in a little later for
            // one that cannot answer, and at once for requests still queued here.
            if open.sentTo == nil || open.deadline + .seconds(1) <= now { expired.append(id) }
        }
        for id in expired {
            guard let open = opens.removeValue(forKey: id) else { continue }
            shards[open.shard].opens.remove(id)
            clients[open.client]?.requests[open.requestID] = nil
            if open.sentTo != nil { sendToWorker(shards[open.shard], WireHeader(.cancel, id: id)) }
            let waited = open.sentTo == nil ? " waiting for shard \(open.shard)'s worker to start" : ""
            sendError(open.client, id: open.requestID, WireError(.timeout, "no answer within the request's timeout\(waited)"))
        }
        if draining { checkDrain(now: now) }
        trimHeapAfterBurst()
    }

    /// glibc keeps freed memory in its arenas: after a burst of requests the supervisor's
    /// resident size would stay at the burst's peak. Once what is held has fallen to a quarter
    /// of a peak of at least 1,000 requests and streams, give the memory back (one malloc_trim).
    private func trimHeapAfterBurst() {
        let held = opens.count + routes.count
        heldPeak = max(heldPeak, held)
        guard heldPeak >= 1_000, held * 4 <= heldPeak else { return }
        heldPeak = held
        pp_malloc_trim()
    }
}
