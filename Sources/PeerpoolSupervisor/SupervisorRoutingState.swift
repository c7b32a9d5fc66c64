import Logging
import PeerpoolIdentity
import PeerpoolWire

/// The supervisor's routing, without sockets, processes or a clock: which requests wait for
/// which worker, which streams are open for which client through which shard, and each shard's
/// worker (starting, running, backing off, stopping) with its restart intensity.
///
/// Driven by what happened — a decoded client message, a worker message, a worker's exit, a
/// client's disconnect, the passing of time (`tick`) — each with the current instant passed in,
/// and answering with the `Action`s to perform (send, spawn, kill, wake me at…). `SupervisorCore`
/// reads the sockets, calls these, and performs the actions; tests drive it with a manual clock.
/// The pattern is Hummingbird's `HTTP2ServerConnectionManager.StateMachine`.
///
/// Bodies are `ZMQFrame`s so that what a client or worker sent (DATA above all) is forwarded
/// without a copy; the state machine reads them but keeps only OPEN bodies queued for a worker.
struct SupervisorRoutingState {
    typealias Instant = ContinuousClock.Instant

    struct ClientKey: Hashable {
        var routingID: [UInt8]
    }

    /// An OPEN not yet answered.
    struct PendingOpen: Routed {
        let client: ClientKey
        let requestID: UInt64
        let remote: ID52
        let shard: Int
        var deadline: Instant
        /// When the OPEN arrived: its latency is measured from here.
        let arrived: Instant
        /// The body, kept until the worker has it (zero-copy forward).
        var body: ZMQFrame?
        /// The worker generation it was sent to; nil while queued for a starting worker.
        var sentTo: Int?

        var clientID: UInt64 { requestID }
    }

    /// An open stream: its id is the same for the client and the worker.
    struct Route: Routed {
        let client: ClientKey
        let stream: UInt64
        let remote: ID52
        let shard: Int
        /// DATA bytes the client may still send before it needs CREDIT.
        var clientCredit: Int
        var clientFinished = false
        var workerFinished = false

        var clientID: UInt64 { stream }
    }

    let configuration: SupervisorConfiguration
    let identities: Set<ID52>
    let shardMap: ShardMap
    var logger: Logger

    // Changed only by this type's methods (here and in its extensions' files); read by the
    // driver (status) and by tests.
    var opens = RoutingTable<PendingOpen>()
    /// The opens' deadlines in order, for `tick`.
    var openDeadlines = OpenDeadlines()
    var streams = RoutingTable<Route>()
    var workers: [WorkerRecord]
    var draining = false
    var drainDeadline: Instant?
    private var nextID: UInt64 = 0
    /// Metric events for the driver to drain (`takeMetrics()`).
    var pendingMetrics: [Metric] = []
    var lastTick: Instant

    static let maxDataBody = 1_048_576
    /// OPEN's JSON body at most: the protocol line and extra line a peer accepts are 64 KiB
    /// together, so a larger OPEN could not succeed anyway (`frame_too_large`).
    static let maxOpenBody = 65_536
    static let streamTypes: Set<WireMessageType> = [.data, .finish, .reset, .credit]
    /// How long a stopping worker has after SHUTDOWN (or SIGTERM) before it is killed.
    static let stopTimeout: Duration = .seconds(3)
    /// The supervisor fails an open the worker has not answered this long after its deadline
    /// (the worker enforces the deadline itself; this is for one that cannot answer).
    static let workerDeadlineSlack: Duration = .seconds(1)

    init(configuration: SupervisorConfiguration, identities: Set<ID52>, logger: Logger, now: Instant) {
        self.configuration = configuration
        self.identities = identities
        self.shardMap = ShardMap(workerCount: configuration.workers)
        self.logger = logger
        self.workers = (0..<configuration.workers).map { WorkerRecord(index: $0) }
        self.lastTick = now
    }

    /// Starts every shard's worker.
    mutating func start(now: Instant) -> [Action] {
        var actions: [Action] = []
        for index in workers.indices { spawn(index, now: now, &actions) }
        return actions
    }

    private mutating func allocateID() -> UInt64 {
        nextID += 1
        return nextID
    }

    /// What `client` holds: requests waiting and streams open.
    func holdings(of client: ClientKey) -> (requests: Int, streams: Int) {
        (opens.count(of: client), streams.count(of: client))
    }

    // MARK: Clients

    /// A client message whose header decoded. `extraFrames`: it had more than header and body.
    mutating func receivedFromClient(_ header: WireHeader, body: ZMQFrame?, extraFrames: Bool, from client: ClientKey, now: Instant) -> [Action] {
        var actions: [Action] = []
        if extraFrames {
            reject(client, header, WireError(.malformedFrame, "a message has at most two frames (header, body); this one has more"), &actions)
            return actions
        }
        if header.id == 0, header.type == .open || header.type == .cancel || header.type == .status {
            actions.sendError(client, id: 0, WireError(.malformedFrame, "request id 0 is reserved; use any other"))
            return actions
        }
        switch header.type {
        case .open: open(client, header, body, now: now, &actions)
        case .cancel: cancel(client, header, body, &actions)
        case .status: status(client, header, body, &actions)
        case .data: data(client, header, body, &actions)
        case .finish, .reset, .credit: streamControl(client, header, body, &actions)
        default:
            actions.sendError(client, id: header.id, WireError(.unknownType, "\(header.type) is not a message a client may send", id: header.id))
        }
        return actions
    }

    /// A client message whose header did not decode: `type` is what its type byte names, if
    /// anything. A stream type carries a stream id, not a request id: answered as any bad
    /// stream message (ABORTED, ending the stream if it is the client's).
    mutating func receivedUndecodable(from client: ClientKey, type: WireMessageType?, error: WireError) -> [Action] {
        var actions: [Action] = []
        if let type, error.id != 0, Self.streamTypes.contains(type) {
            abortOrRefuse(client, stream: error.id, error, &actions)
        } else {
            actions.sendError(client, id: type.map { Self.streamTypes.contains($0) } == true ? 0 : error.id, error)
        }
        return actions
    }

    /// The client is gone: its waiting requests are withdrawn from the workers and its streams
    /// reset, so nothing it opened outlives it.
    mutating func clientDisconnected(_ client: ClientKey, now: Instant) -> [Action] {
        var actions: [Action] = []
        for id in opens.ids(of: client) {
            guard let open = opens.remove(id) else { continue }
            if open.sentTo != nil { actions.append(.sendToWorker(shard: open.shard, WireHeader(.cancel, id: id), .none)) }
        }
        for id in streams.ids(of: client) {
            guard let route = streams.remove(id) else { continue }
            actions.append(.sendToWorker(shard: route.shard, WireHeader(.reset, id: id), .bytes(ResetBody.abandoned.encoded())))
        }
        return actions
    }

    /// An ERROR for requests, an ABORTED for stream messages (ending the stream when it is the
    /// client's: ABORTED always means the stream is gone).
    private mutating func reject(_ client: ClientKey, _ header: WireHeader, _ error: WireError, _ actions: inout [Action]) {
        if Self.streamTypes.contains(header.type) {
            abortOrRefuse(client, stream: header.id, error, &actions)
        } else {
            actions.sendError(client, id: header.id, error)
        }
    }

    /// A bad message about `stream`: ends it (RESET to the worker, ABORTED to the client) when
    /// it is this client's, else just answers ABORTED.
    private mutating func abortOrRefuse(_ client: ClientKey, stream: UInt64, _ error: WireError, _ actions: inout [Action]) {
        if streams[stream]?.client == client {
            abortStream(stream, error, &actions)
        } else {
            actions.sendAborted(client, stream: stream, error)
        }
    }

    // MARK: Requests

    private mutating func open(_ client: ClientKey, _ header: WireHeader, _ body: ZMQFrame?, now: Instant, _ actions: inout [Action]) {
        func fail(_ error: WireError) { actions.sendError(client, id: header.id, error) }
        guard let body else {
            return fail(WireError(.malformedFrame, "OPEN needs a JSON body frame"))
        }
        guard body.count <= Self.maxOpenBody else {
            return fail(WireError(.frameTooLarge, "an OPEN body is at most \(Self.maxOpenBody) bytes, this one has \(body.count)"))
        }
        guard opens.id(client: client, clientID: header.id) == nil else {
            return fail(WireError(.duplicateRequest, "request id \(header.id) is already waiting for an answer"))
        }
        guard !draining else {
            return fail(WireError(.shuttingDown, "the supervisor is shutting down and takes no new requests"))
        }
        let (requests, openStreams) = holdings(of: client)
        guard requests < configuration.maxRequestsPerClient else {
            return fail(WireError(.tooManyRequests, "this client already has \(requests) requests waiting (max_requests_per_client)"))
        }
        guard openStreams < configuration.maxStreamsPerClient else {
            return fail(WireError(.tooManyStreams, "this client already has \(openStreams) open streams (max_streams_per_client)"))
        }
        let request: OpenRequest
        do throws(WireError) {
            request = try body.withUnsafeBytes { bytes throws(WireError) in
                try OpenRequest(jsonBody: bytes, maxTimeout: configuration.maxRequestTimeout, maxWindow: configuration.maxWindow)
            }
        } catch {
            return fail(error)
        }
        if let local = request.local, !identities.contains(local) {
            return fail(WireError(.unknownIdentity, "\(local) is not one of this supervisor's identities"))
        }
        let perPeer = configuration.maxStreamsPerClientPerPeer
        let held = opens.count(of: client, to: request.remote) + streams.count(of: client, to: request.remote)
        guard held < perPeer else {
            return fail(WireError(.tooManyStreams, "this client already has \(held) streams open or opening to \(request.remote) (max_streams_per_client_per_peer \(perPeer), a fair share of the connection every client shares); end some first"))
        }
        let shard = shardMap.worker(for: request.remote)
        let worker = workers[shard]
        if case .backoff(let until) = worker.state {
            record(.failed(shard: shard, code: WireError.Code.workerUnavailable.name))
            return fail(WireError(.workerUnavailable, worker.unavailableMessage(until: until, now: now)))
        }
        // While a worker starts, every open of its shard is queued (the previous worker's sent
        // ones failed when it exited).
        if worker.state == .starting, opens.count(on: shard) >= configuration.maxPendingPerShard {
            record(.failed(shard: shard, code: WireError.Code.tooManyRequests.name))
            return fail(WireError(.tooManyRequests, "shard \(shard)'s worker is starting and \(opens.count(on: shard)) requests already wait for it (max_pending_per_shard)"))
        }
        let id = allocateID()
        var pending = PendingOpen(
            client: client, requestID: header.id, remote: request.remote, shard: shard,
            deadline: now + (request.timeout ?? configuration.defaultRequestTimeout), arrived: now, body: body, sentTo: nil
        )
        record(.opening(shard: shard))
        if worker.state == .running {
            pending.body = nil
            pending.sentTo = worker.generation
            actions.append(.sendToWorker(shard: shard, WireHeader(.open, id: id), .frame(body)))
        }
        opens.insert(pending, id: id)
        openDeadlines.add(pending.deadline, id: id)
    }

    private mutating func cancel(_ client: ClientKey, _ header: WireHeader, _ body: ZMQFrame?, _ actions: inout [Action]) {
        guard body == nil else {
            return actions.sendError(client, id: header.id, WireError(.malformedFrame, "CANCEL has no body"))
        }
        guard let id = opens.id(client: client, clientID: header.id), let open = opens.remove(id) else { return }
        if open.sentTo != nil { actions.append(.sendToWorker(shard: open.shard, WireHeader(.cancel, id: id), .none)) }
        // Counted with the other failures, so opens = opened + failed on every scrape.
        failOpen(open, WireError(.cancelled, "cancelled by the client"), &actions)
    }

    private func status(_ client: ClientKey, _ header: WireHeader, _ body: ZMQFrame?, _ actions: inout [Action]) {
        guard body == nil else {
            return actions.sendError(client, id: header.id, WireError(.malformedFrame, "STATUS has no body"))
        }
        guard opens.id(client: client, clientID: header.id) == nil else {
            return actions.sendError(client, id: header.id, WireError(.duplicateRequest, "request id \(header.id) is already waiting for an answer (an OPEN); use another id"))
        }
        actions.append(.replyStatus(client, requestID: header.id))
    }

    // MARK: Streams

    private mutating func data(_ client: ClientKey, _ header: WireHeader, _ body: ZMQFrame?, _ actions: inout [Action]) {
        guard let body, body.count > 0 else {
            return abortOrRefuse(client, stream: header.id, WireError(.malformedFrame, "DATA needs a non-empty body"), &actions)
        }
        guard let route = streams[header.id], route.client == client else {
            return actions.sendAborted(client, stream: header.id, WireError(.unknownStream, "stream \(header.id) is not open for this client"))
        }
        guard body.count <= Self.maxDataBody else {
            return abortStream(header.id, WireError(.frameTooLarge, "a DATA body is at most \(Self.maxDataBody) bytes, this one has \(body.count)"), &actions)
        }
        guard body.count <= route.clientCredit, !route.clientFinished else {
            let why = route.clientFinished ? "DATA after FINISH" : "DATA of \(body.count) bytes with \(route.clientCredit) bytes of credit"
            return abortStream(header.id, WireError(.flowControlViolation, why), &actions)
        }
        streams.update(header.id) { $0.clientCredit -= body.count }
        record(.data(shard: route.shard, toPeer: true, bytes: body.count))
        actions.append(.sendToWorker(shard: route.shard, header, .frame(body)))
    }

    private mutating func streamControl(_ client: ClientKey, _ header: WireHeader, _ body: ZMQFrame?, _ actions: inout [Action]) {
        guard let route = streams[header.id], route.client == client else {
            if header.type == .credit { return }  // may cross the stream's end
            return actions.sendAborted(client, stream: header.id, WireError(.unknownStream, "stream \(header.id) is not open for this client"))
        }
        // Decoded before anything reaches a worker: ResetBody refuses a code over 2^62-1, which
        // ngtcp2 would abort the worker (and every stream of its shard) on.
        do throws(WireError) {
            switch header.type {
            case .reset: _ = try ResetBody(frame: body)
            case .credit: _ = try CreditBody(frame: body)
            default:
                guard body == nil else { throw WireError(.malformedFrame, "\(header.type) takes no body") }
            }
        } catch {
            let reset = header.type == .reset ? "; the stream was reset with code 0" : ""
            return abortStream(header.id, WireError(error.code, error.message + reset), &actions)
        }
        actions.append(.sendToWorker(shard: route.shard, header, Action.Body(body)))
        switch header.type {
        case .finish:
            let done = streams.update(header.id) { route in
                route.clientFinished = true
                return route.workerFinished
            }
            if done == true { streams.remove(header.id) }
        case .reset:
            streams.remove(header.id)
        default:
            break
        }
    }

    /// Ends a stream on both sides: RESET to the worker, ABORTED to the client.
    private mutating func abortStream(_ id: UInt64, _ error: WireError, _ actions: inout [Action]) {
        guard let route = streams.remove(id) else { return }
        actions.append(.sendToWorker(shard: route.shard, WireHeader(.reset, id: id), .bytes(ResetBody.abandoned.encoded())))
        actions.sendAborted(route.client, stream: id, error)
    }
}
