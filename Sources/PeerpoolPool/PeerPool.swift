import Metrics
import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import ServiceLifecycle

/// Ready-to-use streams to many peers over pooled, authenticated QUIC connections.
///
/// `getStream(_:to:from:)` returns a stream once the peer acknowledged its header. One
/// connection per (local ID52, remote ID52) is made on demand and shared; concurrent requests
/// share one connection attempt and open their streams concurrently. Idle connections are
/// pinged and closed after about a minute. As a `Service`, the pool stops taking requests on
/// graceful shutdown, lets in-flight requests finish within a grace period, and closes its
/// connections with `PoolConfiguration.closeCode`.
public actor PeerPool: Service {
    private struct Key: Hashable {
        let local: ID52
        let remote: ID52
    }

    /// The first (often only) socket; its loop runs requests that name no identity.
    public nonisolated let endpoint: QUICEndpoint
    /// Every socket the pool dials from; a pair's local identity picks the one holding it.
    public nonisolated let endpoints: [QUICEndpoint]
    private let resolver: any AddressResolver
    /// Home relays of the sockets, when the pool may dial through relays.
    private let relays: RelayAttachments?
    private let configuration: PoolConfiguration
    private let logger: Logger
    private let metrics: PoolMetrics
    private var managers: [Key: ConnectionManager] = [:]
    /// Last request per pair, for least-recently-used eviction.
    private var lastUsed: [Key: ContinuousClock.Instant] = [:]
    /// Requests in flight per pair: a pair with any is never evicted.
    private var busy: [Key: Int] = [:]
    private var shuttingDown = false

    public init(
        endpoint: QUICEndpoint, resolver: any AddressResolver = AddressBook(),
        configuration: PoolConfiguration = PoolConfiguration(),
        logger: Logger = Logger(label: "peerpool.pool", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory, relays: RelayDialing? = nil
    ) {
        self.init(
            endpoints: [endpoint], resolver: resolver, configuration: configuration, logger: logger,
            metricsFactory: metricsFactory, relays: relays)
    }

    /// A pool over several sockets, such as one per identity (what serving iroh 1.x clients,
    /// which send no SNI, as several identities takes): each pair dials from the socket that
    /// holds its local identity, so a peer sees that identity at one address both ways.
    /// `endpoints` must not be empty; an identity held by several uses the first. With `relays`,
    /// a peer that discovery names only by its relay is dialled through that relay.
    public init(
        endpoints: [QUICEndpoint], resolver: any AddressResolver = AddressBook(),
        configuration: PoolConfiguration = PoolConfiguration(),
        logger: Logger = Logger(label: "peerpool.pool", factory: { _ in SwiftLogNoOpLogHandler() }),
        metricsFactory: any MetricsFactory = MetricsSystem.factory, relays: RelayDialing? = nil
    ) {
        self.relays = relays.map(RelayAttachments.init)
        precondition(!endpoints.isEmpty, "PeerPool needs at least one endpoint")
        self.metrics = PoolMetrics(factory: metricsFactory)
        self.endpoint = endpoints[0]
        self.endpoints = endpoints
        self.resolver = resolver
        self.configuration = configuration
        self.logger = logger
    }

    /// A stream to `peer` carrying `header`, returned after the peer's `ack`.
    ///
    /// - Parameter local: the identity to connect as; optional when the endpoint holds one.
    /// - Throws: `PoolError` (`no_address`, `connect_failed`, `connection_lost`, `ack_timeout`,
    ///   `too_many_connections`, `too_many_waiters`, `shut_down`) or `StreamProtocolError`
    ///   (`protocol_refused`, `not_acknowledged`). Every wait is bounded by the pool's
    ///   timeouts; cancelling the calling task withdraws the request.
    public nonisolated func getStream(_ header: ProtocolHeader, to peer: PeerAddress, from local: ID52? = nil) async throws -> PeerStream {
        // The request path talks only to the endpoint's connections and our own actors: running
        // it on the endpoint's loop saves a thread switch per step (measured: ~2x opens/s).
        try await withTaskExecutorPreference(socket(for: local).taskExecutor) {
            try await self.stream(header, to: peer, from: local)
        }
    }

    private func stream(_ header: ProtocolHeader, to peer: PeerAddress, from local: ID52?) async throws -> PeerStream {
        let start = ContinuousClock.now
        let (key, manager) = try await manager(for: peer.id52, local: local)
        defer { release(key) }
        let stream = try await manager.stream(header, address: peer.socketAddress)
        let elapsed = (ContinuousClock.now - start).components
        metrics.getStreamDuration.recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        return stream
    }

    /// Pings `peer` (fastn's `Ping` stream) and returns the round trip.
    public nonisolated func ping(_ peer: PeerAddress, from local: ID52? = nil) async throws -> Duration {
        try await withTaskExecutorPreference(socket(for: local).taskExecutor) {
            try await self.pingOnPool(peer, from: local)
        }
    }

    /// The socket holding `local` (the first socket when none is named or none holds it: the
    /// request then fails with `no_identity` as usual).
    private nonisolated func socket(for local: ID52?) -> QUICEndpoint {
        guard let local, endpoints.count > 1 else { return endpoint }
        return endpoints.first { $0.identities.contains(local) } ?? endpoint
    }

    /// Every identity the pool can connect as, in socket order.
    private nonisolated var identities: [ID52] { endpoints.flatMap(\.identities) }

    private func pingOnPool(_ peer: PeerAddress, from local: ID52?) async throws -> Duration {
        let (key, manager) = try await manager(for: peer.id52, local: local)
        defer { release(key) }
        return try await manager.ping(address: peer.socketAddress)
    }

    /// Requests (getStream and ping) in flight.
    public var requestsInFlight: Int { busy.values.reduce(0, +) }

    private func release(_ key: Key) {
        busy[key, default: 1] -= 1
        if busy[key] == 0 { busy[key] = nil }
    }

    /// Connections (open or being opened) the pool holds.
    public var connectionCount: Int {
        get async {
            var count = 0
            for manager in managers.values where await manager.hasConnection { count += 1 }
            return count
        }
    }

    /// The pair's manager, created if needed, with the request counted as in flight (in the same
    /// isolated step, so eviction can never pick a pair that is about to be used).
    private func manager(for remote: ID52, local: ID52?) async throws -> (Key, ConnectionManager) {
        guard !shuttingDown else { throw PoolError(.shutDown, peer: remote, "the pool is shutting down") }
        let identity: ID52
        let all = identities
        if let local {
            guard all.contains(local) else {
                throw PoolError(.noIdentity, peer: remote, "the pool's endpoints hold no secret key for \(local)")
            }
            identity = local
        } else {
            guard all.count == 1 else {
                throw PoolError(.noIdentity, peer: remote, "the pool's endpoints hold \(all.count) identities: say which one connects")
            }
            identity = all[0]
        }
        let key = Key(local: identity, remote: remote)
        if managers[key] == nil, managers.count >= configuration.maxConnections {
            try await makeRoom(for: remote)
        }
        let manager: ConnectionManager
        if let existing = managers[key] {
            manager = existing
        } else {
            guard managers.count < configuration.maxConnections else {
                throw PoolError(.tooManyConnections, peer: remote, "the pool holds \(managers.count) connections (limit \(configuration.maxConnections)) and none is idle")
            }
            manager = ConnectionManager(
                local: identity, remote: remote, endpoint: socket(for: identity), resolver: resolver, relays: relays,
                configuration: configuration, metrics: metrics, logger: logger)
            managers[key] = manager
        }
        lastUsed[key] = .now
        busy[key, default: 0] += 1
        return (key, manager)
    }

    /// At the cap: close the least recently used pair that nothing uses (no request, no open
    /// stream), or refuse at once. Handed-out streams are never cut to make room.
    private func makeRoom(for remote: ID52) async throws {
        let candidates = lastUsed.filter { busy[$0.key] == nil && managers[$0.key] != nil }.sorted { $0.value < $1.value }
        for (key, _) in candidates.prefix(16) {
            guard let manager = managers[key], busy[key] == nil else { continue }
            if await manager.closeIfIdle(), busy[key] == nil, managers[key] === manager {
                managers[key] = nil
                lastUsed[key] = nil
                return
            }
        }
        throw PoolError(.tooManyConnections, peer: remote, "the pool holds \(managers.count) connections (limit \(configuration.maxConnections)) and none is idle")
    }

    /// Connects the socket of `local` (the only identity when nil) to the iroh relay at `url` as
    /// its home relay now, rather than at the first relayed dial: peers can then reach us through
    /// it, and the first request to a relayed peer does not wait for the relay's handshake.
    /// Needs the pool to have been made with `relays`.
    public func connectHomeRelay(_ url: String, for local: ID52? = nil) async throws {
        guard let relays else {
            throw PoolError(.noRelay, "this pool was made without relays (PeerPool(…, relays:)); it cannot use relay \(url)")
        }
        let endpoint = socket(for: local)
        guard let identity = local ?? endpoint.identities.first else {
            throw PoolError(.noIdentity, "the socket has no identity to authenticate to relay \(url) with")
        }
        try await relays.attach(url, to: endpoint, as: identity)
    }

    /// Stops taking requests, waits up to `gracePeriod` for those in flight and for streams
    /// already handed out to be dropped, then closes every connection with the pool's close code.
    public func shutdown(gracePeriod: Duration = .seconds(5)) async {
        shuttingDown = true
        let deadline = ContinuousClock.now + gracePeriod
        for manager in managers.values { await manager.waitUntilIdle(deadline: deadline) }
        for manager in managers.values { await manager.close() }
        managers = [:]
        lastUsed = [:]
        await relays?.closeAll()
    }

    /// Runs until graceful shutdown, then shuts the pool down.
    public func run() async throws {
        try? await gracefulShutdown()
        await shutdown()
    }
}
