import PeerpoolIdentity
import PeerpoolPool
import PeerpoolWire

/// What a worker process needs to know, handed over as one JSON line on its standard input.
///
/// Why standard input: the secret keys are in here, and a pipe from the supervisor is the one
/// place that is neither a command line (visible in `ps`), an environment (readable in
/// /proc/<pid>/environ by the same user and inherited by children) nor a file. The pipe stays
/// open afterwards: its end-of-file tells the worker the supervisor is gone.
public struct WorkerSettings: Codable, Sendable, Equatable {
    /// The shard this worker serves.
    public var index: Int
    /// Counts restarts of this shard; part of the worker's ZeroMQ routing id (`w<index>.<generation>`)
    /// so a replacement never collides with its predecessor's pipe.
    public var generation: Int
    /// The supervisor's `workers.sock` endpoint.
    public var backendEndpoint: String
    /// The worker checks it is still this process's child at start-up.
    public var supervisorPID: Int32
    public var heartbeatIntervalMilliseconds: Int
    /// Hex seeds of the supervisor's identities, first one the default.
    public var secretKeys: [String]
    /// The window the worker grants for client → peer data, in bytes.
    public var receiveWindow: Int
    public var addressBook: String?
    public var connectTimeoutMilliseconds: Int
    public var ackTimeoutMilliseconds: Int
    public var pingIntervalMilliseconds: Int
    public var idlePeriodsBeforeClose: Int
    public var maxConnections: Int
    public var maxWaitersPerPeer: Int
    public var closeCode: UInt64
    /// The largest OPEN `window` and `timeout_ms` the worker accepts: the supervisor's
    /// configured limits, so both sides range-check an OPEN alike.
    public var maxWindow: Int
    public var maxRequestTimeoutMilliseconds: Int
    /// An OPEN's deadline when it names no `timeout_ms`: the supervisor's
    /// `default_request_timeout`, so the worker answers `timeout` before the supervisor's backstop.
    public var defaultRequestTimeoutMilliseconds: Int

    public init(
        index: Int, generation: Int, backendEndpoint: String, supervisorPID: Int32,
        heartbeatInterval: Duration, secretKeys: [SecretKey], receiveWindow: Int,
        addressBook: String?, pool: PoolConfiguration,
        maxWindow: Int = 16_777_216, maxRequestTimeout: Duration = .seconds(600),
        defaultRequestTimeout: Duration = .seconds(10)
    ) {
        self.defaultRequestTimeoutMilliseconds = OpenRequest.milliseconds(defaultRequestTimeout)
        self.maxWindow = maxWindow
        self.maxRequestTimeoutMilliseconds = OpenRequest.milliseconds(maxRequestTimeout)
        self.index = index
        self.generation = generation
        self.backendEndpoint = backendEndpoint
        self.supervisorPID = supervisorPID
        self.heartbeatIntervalMilliseconds = OpenRequest.milliseconds(heartbeatInterval)
        self.secretKeys = secretKeys.map(\.hexSeed)
        self.receiveWindow = receiveWindow
        self.addressBook = addressBook
        self.connectTimeoutMilliseconds = OpenRequest.milliseconds(pool.connectTimeout)
        self.ackTimeoutMilliseconds = OpenRequest.milliseconds(pool.ackTimeout)
        self.pingIntervalMilliseconds = OpenRequest.milliseconds(pool.pingInterval)
        self.idlePeriodsBeforeClose = pool.idlePeriodsBeforeClose
        self.maxConnections = pool.maxConnections
        self.maxWaitersPerPeer = pool.maxWaitersPerPeer
        self.closeCode = pool.closeCode
    }

    /// The ZeroMQ routing id the worker connects with.
    public var routingID: String { Self.routingID(index: index, generation: generation) }

    public static func routingID(index: Int, generation: Int) -> String { "w\(index).\(generation)" }

    public var poolConfiguration: PoolConfiguration {
        var pool = PoolConfiguration()
        pool.connectTimeout = .milliseconds(connectTimeoutMilliseconds)
        pool.ackTimeout = .milliseconds(ackTimeoutMilliseconds)
        pool.pingInterval = .milliseconds(pingIntervalMilliseconds)
        pool.idlePeriodsBeforeClose = idlePeriodsBeforeClose
        pool.maxConnections = maxConnections
        pool.maxWaitersPerPeer = maxWaitersPerPeer
        pool.closeCode = closeCode
        return pool
    }

    public func identities() throws -> [SecretKey] {
        try secretKeys.map { try SecretKey(hexSeed: $0) }
    }
}
