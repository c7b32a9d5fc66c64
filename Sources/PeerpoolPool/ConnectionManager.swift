import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

/// The one connection between a local identity and a remote one: created on demand, shared by
/// every concurrent request, pinged while idle, closed after a minute without use.
///
/// Requests on an established connection open their streams concurrently (fastn-net's
/// reference opens one at a time; `peerpool-bench pool --opens` compares the two). When the connection fails, every request waiting on it fails with an
/// error naming the cause, and the next request connects again. Streams already handed out are
/// left to their owners.
actor ConnectionManager {
    let local: ID52
    let remote: ID52
    private let endpoint: QUICEndpoint
    /// The endpoint's event loop as a task executor (see `StreamLease`).
    nonisolated var executor: EventLoopTaskExecutor { endpoint.taskExecutor }
    private let resolver: any AddressResolver
    private let relays: RelayAttachments?
    private let configuration: PoolConfiguration
    private let metrics: PoolMetrics
    private var logger: Logger

    private var connection: QUICConnection?
    private var connectAttempt: Task<Void, Never>?
    /// Numbers connect attempts, so a cancelled attempt that finishes late changes nothing.
    private var attemptNumber: UInt64 = 0
    private var connectWaiters: [UInt64: CheckedContinuation<QUICConnection, any Error>] = [:]
    private var nextWaiterID: UInt64 = 0
    /// Requests between entry and a ready stream (or their failure).
    private var requests = 0
    /// Streams handed out and not yet dropped: the connection is not idle while any lives.
    private var openStreams = 0
    private var lastUsed = ContinuousClock.now
    private var idleTask: Task<Void, Never>?
    private var closed = false

    init(local: ID52, remote: ID52, endpoint: QUICEndpoint, resolver: any AddressResolver, relays: RelayAttachments?,
         configuration: PoolConfiguration, metrics: PoolMetrics, logger: Logger) {
        self.relays = relays
        self.local = local
        self.remote = remote
        self.endpoint = endpoint
        self.resolver = resolver
        self.configuration = configuration
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "peer.id52"] = "\(remote)"
        self.logger = logger
    }

    /// No request, no open stream: the pool may close this connection to make room.
    var isIdle: Bool { requests == 0 && openStreams == 0 }
    var hasConnection: Bool { connection != nil || connectAttempt != nil }

    // MARK: Requests

    func stream(_ header: ProtocolHeader, address: SocketAddress?) async throws -> PeerStream {
        guard !closed else { throw PoolError(.shutDown, peer: remote, "the pool is shutting down") }
        guard requests < configuration.maxWaitersPerPeer else {
            throw PoolError(.tooManyWaiters, peer: remote, "\(requests) requests already wait for \(remote) (limit \(configuration.maxWaitersPerPeer))")
        }
        requests += 1
        lastUsed = .now
        defer {
            requests -= 1
            lastUsed = .now
            if isIdle { releaseIdleWaiters() }
        }
        let connection = try await connected(address: address)

        openStreams += 1
        let lease = StreamLease(manager: self)
        do {
            let remote = self.remote
            let ackTimeout = configuration.ackTimeout
            let stream = try await withTimeout(ackTimeout, {
                PoolError(.ackTimeout, peer: remote, "\(remote) did not acknowledge \(header.protocol) within \(ackTimeout)")
            }) {
                try await StreamOpener.open(header, on: connection, lease: lease)
            }
            metrics.streamsOpened.increment()
            return stream
        } catch let error as QUICError {
            throw await lost(connection, error)
        }
    }

    /// fastn's ping over this pair's connection (connecting first if needed).
    func ping(address: SocketAddress?) async throws -> Duration {
        requests += 1
        defer {
            requests -= 1
            if isIdle { releaseIdleWaiters() }
        }
        let connection = try await connected(address: address)
        let clock = ContinuousClock()
        let start = clock.now
        do {
            try await pingWithTimeout(connection)
        } catch let error as QUICError {
            throw await lost(connection, error)
        }
        return clock.now - start
    }

    /// A transport error while using `connection`: name the cause (the connection's close
    /// reason if it is gone).
    private func lost(_ connection: QUICConnection, _ error: QUICError) async -> any Error {
        metrics.waitersFailed.increment()
        if let reason = await connection.closeReason {
            return PoolError(.connectionLost, peer: remote, "connection to \(remote) failed: \(reason)")
        }
        return error
    }

    private func pingWithTimeout(_ connection: QUICConnection) async throws {
        let remote = self.remote
        let timeout = configuration.ackTimeout
        try await withTimeout(timeout, {
            PoolError(.ackTimeout, peer: remote, "\(remote) did not answer a ping within \(timeout)")
        }) {
            try await StreamOpener.ping(connection)
        }
    }

    func streamReleased() {
        openStreams -= 1
        lastUsed = .now
        if isIdle { releaseIdleWaiters() }
    }

    /// Shutdown waiting for requests and handed-out streams to end.
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    private func releaseIdleWaiters() {
        for waiter in idleWaiters { waiter.resume() }
        idleWaiters = []
    }

    /// Returns once no request runs and no handed-out stream lives, or at `deadline`.
    func waitUntilIdle(deadline: ContinuousClock.Instant) async {
        guard !isIdle else { return }
        let timer = Task {
            // Cancelled once idle came first: then there is nothing to release.
            guard (try? await Task.sleep(until: deadline)) != nil else { return }
            self.releaseIdleWaiters()
        }
        await withCheckedContinuation { continuation in
            if isIdle { continuation.resume() } else { idleWaiters.append(continuation) }
        }
        timer.cancel()
    }

    // MARK: The shared connection attempt

    /// The established connection, connecting if there is none. Every concurrent caller waits
    /// on one attempt; each gives up alone after the connect timeout or when cancelled.
    private func connected(address: SocketAddress?) async throws -> QUICConnection {
        if let connection { return connection }
        nextWaiterID += 1
        let id = nextWaiterID
        let remote = self.remote
        let timeout = configuration.connectTimeout
        do {
            return try await withTimeout(timeout, { ConnectTimedOut() }) {
                try await self.waitForConnection(id: id, address: address)
            }
        } catch is ConnectTimedOut {
            throw PoolError(.connectFailed, peer: remote, "could not connect to \(remote) within \(timeout)\(attemptPath.map { " (trying \($0))" } ?? "")")
        }
    }

    /// This waiter's connect timeout ran out (the attempt may go on for others).
    private struct ConnectTimedOut: Error {}

    /// What the running attempt is trying, for the timeout's message: `relay <url>` once it
    /// went to a relay.
    private var attemptPath: String?

    private func trying(_ path: String?) { attemptPath = path }

    private func waitForConnection(id: UInt64, address: SocketAddress?) async throws -> QUICConnection {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<QUICConnection, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                } else if let connection {
                    continuation.resume(returning: connection)
                } else if closed {
                    continuation.resume(throwing: PoolError(.shutDown, peer: remote, "the pool is shutting down"))
                } else {
                    connectWaiters[id] = continuation
                    if connectAttempt == nil { startConnecting(address: address) }
                }
            }
        } onCancel: {
            Task { await self.withdraw(id) }
        }
    }

    private func withdraw(_ id: UInt64) {
        connectWaiters.removeValue(forKey: id)?.resume(throwing: CancellationError())
        // Nobody waits for the attempt any more: stop it rather than let it run to its timeout.
        if connectWaiters.isEmpty { abandonAttempt() }
    }

    private func abandonAttempt() {
        connectAttempt?.cancel()
        connectAttempt = nil
        attemptNumber += 1
    }

    private func startConnecting(address: SocketAddress?) {
        attemptNumber += 1
        let attempt = attemptNumber
        let (endpoint, resolver, local, remote) = (self.endpoint, self.resolver, self.local, self.remote)
        let timeout = configuration.connectTimeout
        connectAttempt = Task {
            let outcome: Result<QUICConnection, any Error>
            do {
                self.trying(nil)
                let route = if let address { PeerRoute(addresses: [address]) } else { try await resolver.route(to: remote) }
                if route.isEmpty {
                    // The resolver's own no_address says what discovery answered (cached: no second query).
                    _ = try await resolver.addresses(of: remote)
                }
                let direct: [@Sendable () async throws -> QUICConnection] = route.addresses.map { candidate in
                    let dial: @Sendable () async throws -> QUICConnection = {
                        try await withTimeout(timeout, {
                            QUICError(.handshakeTimeout, "no handshake with \(remote) at \(candidate) within \(timeout)")
                        }) {
                            try await endpoint.connect(to: remote, at: candidate, as: local)
                        }
                    }
                    return dial
                }
                var viaRelay: (@Sendable () async throws -> QUICConnection)?
                if let relays, let first = route.relayURLs.first {
                    let urls = route.relayURLs
                    viaRelay = {
                        try await withTimeout(timeout, {
                            QUICError(.handshakeTimeout, "no handshake with \(remote) through relay \(first) within \(timeout)")
                        }) {
                            try await relays.connect(to: remote, relayURLs: urls, endpoint: endpoint, as: local)
                        }
                    }
                }
                let connected: QUICConnection
                switch (direct.isEmpty, viaRelay) {
                case (true, nil):
                    throw Self.noPath(to: remote, route)
                case (true, let viaRelay?):
                    self.trying("relay \(route.relayURLs[0])")
                    connected = try await viaRelay()
                case (false, nil):
                    connected = try await DialRace.first(direct)
                case (false, let viaRelay?):
                    // Direct paths first; the relay when none of them answers.
                    do {
                        connected = try await DialRace.first(direct)
                    } catch {
                        self.trying("relay \(route.relayURLs[0]) after every address failed")
                        connected = try await viaRelay()
                    }
                }
                outcome = .success(connected)
            } catch let error as PoolError {
                outcome = .failure(error)
            } catch let error as QUICError where error.code == .addressUnreachable {
                outcome = .failure(PoolError(.addressUnreachable, peer: remote, "\(remote): \(error.message)"))
            } catch {
                outcome = .failure(PoolError(.connectFailed, peer: remote, "could not connect to \(remote): \(error)"))
            }
            self.connectFinished(outcome, attempt: attempt)
        }
    }

    /// `no_address`, saying what discovery knew: nothing, or only relays this pool cannot use.
    static func noPath(to remote: ID52, _ route: PeerRoute) -> PoolError {
        if route.relayURLs.isEmpty {
            return PoolError(.noAddress, peer: remote, "no address known for \(remote): give one as \(remote)@host:port or add it to the address book")
        }
        let relays = route.relayURLs.map { "relay=\($0)" }.joined(separator: " ")
        return PoolError(.noAddress, peer: remote, "no direct address known for \(remote): discovery names only \(relays); the peer is reachable only through its relay, and this endpoint has no relay path")
    }

    private func connectFinished(_ outcome: Result<QUICConnection, any Error>, attempt: UInt64) {
        guard attempt == attemptNumber else {
            // Abandoned: its waiters are gone; a connection it made anyway is not wanted.
            if case .success(let unwanted) = outcome {
                Task { await unwanted.close(code: configuration.closeCode, reason: "abandoned") }
            }
            return
        }
        connectAttempt = nil
        let waiters = connectWaiters
        connectWaiters = [:]
        switch outcome {
        case .success(let established):
            if closed {
                Task { await established.close(code: configuration.closeCode, reason: "pool shut down") }
                for waiter in waiters.values { waiter.resume(throwing: PoolError(.shutDown, peer: remote, "the pool is shutting down")) }
                return
            }
            metrics.connects.increment()
            metrics.connectionsOpen.record(1)
            logger.debug("connected")
            connection = established
            for waiter in waiters.values { waiter.resume(returning: established) }
            watch(established)
        case .failure(let error):
            metrics.connectFailures.increment()
            logger.debug("connect failed", metadata: ["error": "\(error)"])
            for waiter in waiters.values {
                metrics.waitersFailed.increment()
                waiter.resume(throwing: error)
            }
        }
    }

    /// Notices the connection's end whatever its cause, and drives the idle pings.
    private func watch(_ established: QUICConnection) {
        Task {
            let reason = await established.closed()
            self.connectionEnded(established, reason)
        }
        lastUsed = .now
        let interval = configuration.pingInterval
        idleTask = Task {
            var idlePeriods = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled else { return }
                guard await self.idleTick(&idlePeriods, since: interval) else { return }
            }
        }
    }

    /// One ping period passed. Returns false once the connection is gone.
    private func idleTick(_ idlePeriods: inout Int, since interval: Duration) async -> Bool {
        guard let connection else { return false }
        if !isIdle || ContinuousClock.now - lastUsed < interval {
            idlePeriods = 0
            return true
        }
        idlePeriods += 1
        if idlePeriods >= configuration.idlePeriodsBeforeClose {
            logger.debug("closing idle connection")
            forget(connection)
            await connection.close(code: configuration.closeCode, reason: "idle")
            return false
        }
        do {
            try await pingWithTimeout(connection)
            metrics.pings.increment()
            return true
        } catch {
            metrics.pingFailures.increment()
            logger.debug("ping failed; closing", metadata: ["error": "\(error)"])
            forget(connection)
            await connection.close(code: configuration.closeCode, reason: "ping failed")
            return false
        }
    }

    private func connectionEnded(_ ended: QUICConnection, _ reason: QUICCloseReason) {
        guard connection === ended else { return }
        logger.debug("connection ended", metadata: ["quic.reason": "\(reason)"])
        forget(ended)
    }

    /// The connection is over (or being closed by us): the next request connects afresh.
    private func forget(_ ended: QUICConnection) {
        guard connection === ended else { return }
        connection = nil
        idleTask?.cancel()
        idleTask = nil
        metrics.connectionsOpen.record(0)
    }

    /// Closes the connection if nothing uses it. Returns whether it did.
    func closeIfIdle() async -> Bool {
        guard isIdle, connectWaiters.isEmpty else { return false }
        closed = true
        abandonAttempt()
        idleTask?.cancel()
        if let connection {
            forget(connection)
            await connection.close(code: configuration.closeCode, reason: "pool full")
        }
        return true
    }

    /// Shutdown: no new requests; the connection closes with the pool's code.
    func close() async {
        closed = true
        idleTask?.cancel()
        if let connection { await connection.close(code: configuration.closeCode, reason: "pool shut down") }
    }
}

/// Held by a handed-out stream; its end tells the manager the stream is gone.
final class StreamLease: Sendable {
    private let manager: ConnectionManager
    init(manager: ConnectionManager) { self.manager = manager }
    deinit {
        let manager = self.manager
        // On the endpoint's loop, where the pool's actors run: a plain `Task` here woke a
        // global-executor thread per stream (seen in the worker's profile).
        Task(executorPreference: manager.executor) { await manager.streamReleased() }
    }
}
