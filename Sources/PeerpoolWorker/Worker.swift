#if canImport(Glibc)
import Glibc
#endif
import Logging
import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolWire
import ServiceLifecycle
import Synchronization

/// One worker process's work: an in-process `PeerPool` served to the supervisor over ZeroMQ
/// (docs/wire-protocol.md, "Supervisor ↔ worker").
///
/// `run()` binds a dial-only QUIC endpoint (one event-loop thread), builds the pool, starts a
/// reactor thread ("peerpool-worker-<index>") with one DEALER connected to the supervisor's
/// backend, says HELLO and serves OPEN/CANCEL and stream traffic until SHUTDOWN, `stop`,
/// graceful shutdown (as a `Service`) or cancellation. Then it refuses new OPENs, waits up to
/// the grace period for pending opens and open streams to end, aborts what is left
/// (`shutting_down`), shuts the pool down and returns.
///
/// HEARTBEAT comes from a Swift task that asks the pool for its connection count each time, not
/// from a reactor timer: a worker whose Swift side is stuck stops heartbeating, and the
/// supervisor kills it as hung.
public final class Worker: Service, Sendable {
    public let settings: WorkerSettings
    private let logger: Logger
    private let identities: [SecretKey]
    private let resolver: AddressBook
    private let stopRequests: AsyncStream<Duration>
    private let stopContinuation: AsyncStream<Duration>.Continuation
    private let started = Mutex(false)

    /// Grace period when the worker stops through graceful shutdown of its service group.
    public static let defaultGracePeriod: Duration = .seconds(2)

    /// Checks the settings (secret keys, address book file); nothing starts until `run()`.
    public init(settings: WorkerSettings, logger: Logger) throws {
        self.settings = settings
        var logger = logger
        logger[metadataKey: "worker.index"] = "\(settings.index)"
        logger[metadataKey: "worker.generation"] = "\(settings.generation)"
        self.logger = logger
        self.identities = try settings.identities()
        self.resolver = try settings.addressBook.map { try AddressBook(contentsOfFile: $0) } ?? AddressBook()
        (stopRequests, stopContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(1))
    }

    /// Asks `run()` to shut down as SHUTDOWN does, letting open streams finish within
    /// `gracePeriod`. Safe from any thread (a signal handler's queue), before or during `run()`.
    public func stop(gracePeriod: Duration) {
        stopContinuation.yield(gracePeriod)
    }

    /// Serves until told to stop (see the type's description); returns once everything is
    /// closed. Call it once. Throws when the endpoint or the socket cannot be set up.
    public func run() async throws {
        let first = started.withLock { started in
            defer { started = true }
            return !started
        }
        precondition(first, "Worker.run() called twice")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await serve(on: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
    }

    private func serve(on group: MultiThreadedEventLoopGroup) async throws {
        // Nobody dials in: the socket only carries the connections this worker makes.
        // QUIC keep-alive: a client may hold a stream without reading or writing for longer than
        // the idle timeout (a slow consumer, a quiet protocol); without PINGs the connection, and
        // every other client's stream on it, would die of idle timeout. The pool still closes
        // connections with no requests and no streams after its own idle periods.
        var quic = QUICConfiguration()
        quic.keepAliveInterval = quic.idleTimeout / 3
        // `pool.connect_timeout` is the bound the configuration documents; QUIC's own 10 s
        // handshake limit would otherwise cut every longer one short (a slow peer failed with
        // handshake_timeout at 10 s under a 30 s connect timeout). It stays a backstop a quarter
        // (at least a second) beyond the connect timeout: at exactly the same instant the two
        // timers raced, and on a loaded host QUIC's won, naming the wrong bound.
        let connectTimeout = Duration.milliseconds(settings.connectTimeoutMilliseconds)
        quic.handshakeTimeout = min(.seconds(86_400), max(quic.handshakeTimeout, connectTimeout + max(.seconds(1), connectTimeout / 4)))
        let endpoint: QUICEndpoint
        do {
            // Dual-stack: one socket reaches IPv6 and IPv4 peers (docs/wire-protocol.md, `address`).
            endpoint = try await QUICEndpoint.bind(
                host: "::", port: 0, identities: identities, acceptIncoming: false,
                configuration: quic, eventLoopGroup: group, logger: logger)
        } catch {
            // A host with IPv6 disabled: IPv4 only; IPv6 addresses fail with address_unreachable.
            logger.warning("no IPv6 socket, serving IPv4 peers only", metadata: ["error": "\(error)"])
            endpoint = try await QUICEndpoint.bind(
                host: "0.0.0.0", port: 0, identities: identities, acceptIncoming: false,
                configuration: quic, eventLoopGroup: group, logger: logger)
        }
        // A worker whose socket died can serve nobody: exit so the supervisor restarts the shard
        // (and fails what it held) instead of heartbeating with a dead socket.
        let deathLogger = logger
        endpoint.whenClosedOnItsOwn { cause in
            deathLogger.critical("worker's QUIC socket closed; exiting for a restart", metadata: ["error": "\(cause)"])
            exit(70)
        }
        let pool = PeerPool(endpoint: endpoint, resolver: resolver, configuration: settings.poolConfiguration, logger: logger)
        let context: ZMQContext
        let core: WorkerCore
        do {
            context = try ZMQContext(ioThreads: 1)
            core = try WorkerCore(settings: settings, pool: pool, context: context, logger: logger, stopRequests: stopContinuation)
        } catch {
            await endpoint.close()
            throw error
        }
        do {
            try await core.start()
        } catch {
            await core.stop()
            context.terminate()
            await endpoint.close()
            throw error
        }
        logger.info("worker ready", metadata: ["worker.backend": "\(settings.backendEndpoint)", "quic.local": "\(endpoint.localAddress)"])

        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.heartbeat(core) }
            let grace = await withGracefulShutdownHandler {
                await withTaskCancellationHandler {
                    await self.nextStopRequest()
                } onCancel: {
                    self.stop(gracePeriod: .zero)
                }
            } onGracefulShutdown: {
                self.stop(gracePeriod: Self.defaultGracePeriod)
            }
            await drain(core, grace: grace)
            tasks.cancelAll()
        }

        // Streams are gone; requests were cancelled: the pool has little left to wait for.
        await pool.shutdown(gracePeriod: .milliseconds(500))
        await endpoint.close(code: settings.closeCode)
        await core.stop()
        logger.info("worker stopped")
    }

    private func nextStopRequest() async -> Duration {
        for await grace in stopRequests { return grace }
        return .zero
    }

    /// Refuses new OPENs, waits up to `grace` for pending and open streams, aborts the rest.
    private func drain(_ core: WorkerCore, grace: Duration) async {
        // The reactor stops only in `serve` after this returns; should it have stopped anyway
        // there is nothing left to drain.
        guard let idle = try? await core.onReactor({ core.beginShutdown() }) else { return }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in idle { return }
            }
            group.addTask { try? await Task.sleep(for: grace) }
            await group.next()
            group.cancelAll()
        }
        _ = try? await core.onReactor { core.abandonAll() }
    }

    private func heartbeat(_ core: WorkerCore) async {
        let interval = Duration.milliseconds(max(10, settings.heartbeatIntervalMilliseconds))
        let pool = core.pool
        while true {
            do { try await Task.sleep(for: interval) } catch { return }
            // Through the pool's actor on purpose: if it is stuck, so are the heartbeats.
            let connections = await pool.connectionCount
            core.enqueue { core.sendHeartbeat(connections: connections) }
        }
    }
}
