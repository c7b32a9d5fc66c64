/// STATUS_REPLY's JSON body (docs/wire-protocol.md, *Status*): what a running supervisor and
/// each of its workers are doing.
///
/// `encoded()` and `init(decoding:)` are its one encoder and decoder (the supervisor's and
/// `SupervisorClient.status()`'s); the keys are the spec's snake_case names, spelled out in `CodingKeys` so no
/// key strategy is needed on either side. Unknown fields are ignored when decoding, as the spec
/// asks of every JSON body.
public struct SupervisorStatus: WireBody, Codable {
    public static let messageType = WireMessageType.statusReply

    /// The wire protocol version the supervisor speaks (`1`).
    public var version: Int
    /// The supervisor's process id.
    public var pid: Int32
    /// Seconds since the supervisor started.
    public var uptimeSeconds: Double
    /// Clients (DEALER sockets) connected to the frontend.
    public var clients: Int
    /// Streams open across all clients.
    public var streams: Int
    /// OPEN requests still waiting for an answer.
    public var requests: Int
    /// One entry per shard, in index order.
    public var workers: [WorkerStatus]
    /// Clients dropped since start because they did not read their replies (their queue
    /// reached its high-water mark); nil from a supervisor that does not report it.
    public var clientsOverrun: Int?

    public init(
        version: Int, pid: Int32, uptimeSeconds: Double, clients: Int, streams: Int, requests: Int, workers: [WorkerStatus],
        clientsOverrun: Int? = nil
    ) {
        self.clientsOverrun = clientsOverrun
        self.version = version
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.clients = clients
        self.streams = streams
        self.requests = requests
        self.workers = workers
    }

    enum CodingKeys: String, CodingKey {
        case version, pid
        case uptimeSeconds = "uptime_s"
        case clients, streams, requests, workers
        case clientsOverrun = "clients_overrun"
    }

    public func encoded() -> [UInt8] { WireJSON.encode(self) }

    public init(decoding bytes: UnsafeRawBufferPointer) throws(WireError) {
        self = try WireJSON.decode(Self.self, bytes, Self.messageType)
    }

    /// One worker (shard) as the supervisor sees it.
    public struct WorkerStatus: Codable, Sendable, Equatable {
        /// The shard index, `0 ..< workers`.
        public var index: Int
        /// The worker's process id; nil (JSON `null`) while no process runs for the shard.
        public var pid: Int32?
        /// One of `starting`, `running`, `backoff`, `stopping`, `stopped`. A string, not an enum,
        /// so a newer supervisor's state still decodes.
        public var state: String
        /// Seconds since the current process started; nil while none runs.
        public var uptimeSeconds: Double?
        /// How many times the shard's worker was restarted.
        public var restarts: Int
        /// From the worker's latest heartbeat: QUIC connections it holds.
        public var connections: Int
        /// From the worker's latest heartbeat: streams open.
        public var streams: Int
        /// From the worker's latest heartbeat: requests in flight.
        public var requests: Int

        public init(index: Int, pid: Int32?, state: String, uptimeSeconds: Double?, restarts: Int, connections: Int, streams: Int, requests: Int) {
            self.index = index
            self.pid = pid
            self.state = state
            self.uptimeSeconds = uptimeSeconds
            self.restarts = restarts
            self.connections = connections
            self.streams = streams
            self.requests = requests
        }

        enum CodingKeys: String, CodingKey {
            case index, pid, state
            case uptimeSeconds = "uptime_s"
            case restarts, connections, streams, requests
        }

        /// Writes `pid` and `uptime_s` as JSON `null` when absent (the synthesized encoder would
        /// leave the keys out), so the body always has every field of the spec's example.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(index, forKey: .index)
            try container.encode(pid, forKey: .pid)
            try container.encode(state, forKey: .state)
            try container.encode(uptimeSeconds, forKey: .uptimeSeconds)
            try container.encode(restarts, forKey: .restarts)
            try container.encode(connections, forKey: .connections)
            try container.encode(streams, forKey: .streams)
            try container.encode(requests, forKey: .requests)
        }
    }
}
