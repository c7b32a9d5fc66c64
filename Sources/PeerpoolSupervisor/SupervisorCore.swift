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
        var shard: Int
        var deadline: ContinuousClock.Instant
        /// The body, kept until the worker has it (zero-copy forward).
        var body: ZMQFrame?
        /// The worker generation it was sent to; nil while queued for a starting worker.
        var sentTo: Int?
    }

    struct Route {
        var client: ClientKey
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

    static let maxDataBody = 1_048_576
    static let maxFrame: Int64 = 16 * 1_048_576 + 64
    static let frontendHighWaterMark: Int32 = 200_000

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
        try frontend.setOption(ZMQ_RCVHWM, 0)
        try frontend.setOption(ZMQ_MAXMSGSIZE, int64: Self.maxFrame)
        let backend = try ZMQSocket(context, .router)
        try backend.setOption(ZMQ_ROUTER_MANDATORY, 1)
        try backend.setOption(ZMQ_SNDHWM, 0)
        try backend.setOption(ZMQ_RCVHWM, 0)
        let monitor = try frontend.monitor(context, events: ZMQMonitorEvent.disconnected, name: "supervisor-frontend-\(getpid())")
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
            for shard in shards { shard.process?.signal(SIGKILL); shard.process?.close() }
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
        guard sendRouting(frontend, key.routingID) else { return dropUnreachable(key) }
        frontend.send(header, more: body != nil)
        if let body { frontend.send(body, more: false) }
    }

    /// Forwards frames received elsewhere, without copying them.
    func forwardToClient(_ key: ClientKey, header: ZMQFrame, body: ZMQFrame?) {
        guard sendRouting(frontend, key.routingID) else { return dropUnreachable(key) }
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

    private func dropUnreachable(_ key: ClientKey) {
        guard clients[key] != nil else { return }
        logger.warning("client unreachable or not reading (queue full); dropping it and its streams")
        dropClient(key)
    }

    // MARK: Clients

    func client(for key: ClientKey, header: ZMQFrame) -> Client {
        if let client = clients[key] { return client }
        let descriptor = header.sourceDescriptor
        let client = Client(key: key, descriptor: descriptor)
        clients[key] = client
        clientsByDescriptor[descriptor, default: []].insert(key)
        return client
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
            sendToWorker(shards[route.shard], WireHeader(.reset, id: stream), body: WireInteger.bytes(UInt64(0)))
        }
    }

    private func readMonitor() {
        while let event = try? ZMQMonitorEvent.read(frontendMonitor) {
            guard event.event == ZMQMonitorEvent.disconnected, let keys = clientsByDescriptor[event.value] else { continue }
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
    }
}
