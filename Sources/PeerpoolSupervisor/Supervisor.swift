import Foundation
import Logging
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolWire
import ServiceLifecycle
import Synchronization

/// Shards remote ID52s over crash-isolated worker processes and serves the wire protocol
/// (docs/wire-protocol.md) on `ipc://<runtime-dir>/frontend.sock`.
///
/// Run it as a `Service` (`peerpool serve` does, in a ServiceGroup with SIGTERM as graceful
/// shutdown), or embed it: start it in your process and call `client()` for the same
/// getStream API, served by the workers. All routing runs on one reactor thread; the worker
/// processes do the QUIC work.
public final class Supervisor: Service, Sendable {
    public let configuration: SupervisorConfiguration
    public let identities: [SecretKey]
    public let runtimeDirectory: RuntimeDirectory
    /// Prometheus metrics of every shard; `metricsText()` renders them fresh.
    public let metrics: SupervisorMetrics
    /// The socket layer and routing, usable only on the reactor's thread (checked).
    private let core: ReactorBound<SupervisorCore>
    private let reactor: ZMQReactor
    private let shardMap: ShardMap
    private let context: ZMQContext
    private let lockDescriptor: Int32
    private let started = Mutex(false)

    /// Loads nothing itself: pass the identities (see `SupervisorConfiguration.loadIdentities()`).
    /// Prepares and locks the runtime directory at once, so a second supervisor fails here.
    public init(configuration: SupervisorConfiguration, identities: [SecretKey], logger: Logger = Logger(label: "peerpool.supervisor")) throws {
        guard !identities.isEmpty else { throw SupervisorError(.identity, "a supervisor needs at least one identity") }
        let configuration = try configuration.validated()
        try Self.checkAddressBook(configuration.addressBook)
        self.configuration = configuration
        self.identities = identities
        self.runtimeDirectory = RuntimeDirectory(path: configuration.runtimeDirectory)
        try runtimeDirectory.prepare()
        lockDescriptor = try runtimeDirectory.lock()
        let command = try configuration.workerCommand ?? Self.defaultWorkerCommand()
        reactor = try ZMQReactor(name: "peerpool-supervisor")
        context = try ZMQContext(ioThreads: 1)
        metrics = SupervisorMetrics(workers: configuration.workers)
        shardMap = ShardMap(workerCount: configuration.workers)
        core = ReactorBound(
            SupervisorCore(
                configuration: configuration, identities: identities, workerCommand: command,
                reactor: reactor, context: context, metrics: metrics, logger: logger
            ),
            reactor: reactor
        )
    }

    /// Dropping a supervisor without `shutdown()` still ends it: the reactor stops, and as it
    /// ends it kills the workers and closes the sockets. (Its closures hold the core strongly;
    /// the loop releases them when it ends.)
    deinit {
        reactor.stop()
        close(lockDescriptor)
    }

    /// The endpoint clients connect to.
    public var frontendEndpoint: String { runtimeDirectory.frontendEndpoint }

    /// The Prometheus exposition of ``metrics``, its gauges refreshed from a status snapshot
    /// first (a stopped supervisor renders what it last knew).
    public func metricsText() async -> [UInt8] {
        if let status = try? await status() { metrics.update(from: status) }
        return metrics.render()
    }

    /// This executable with `worker`, when this executable is `peerpool`; an embedding
    /// application must name the peerpool executable in `workerCommand`.
    static func defaultWorkerCommand() throws -> [String] {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        guard URL(fileURLWithPath: executable).lastPathComponent == "peerpool" else {
            throw SupervisorError(
                .workerCommand,
                "this program (\(executable)) is not peerpool; set worker_command to the peerpool executable and `worker`, e.g. [\"/usr/local/bin/peerpool\", \"worker\"]"
            )
        }
        return [executable, "worker"]
    }

    /// Binds the sockets and starts the workers; returns once the sockets are bound (workers
    /// may still be starting: requests wait for them). Called by `run()`; call it yourself to
    /// embed without a ServiceGroup, then `shutdown()`.
    public func start() async throws {
        guard started.withLock({ started in defer { started = true }; return !started }) else { return }
        let core = self.core
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            reactor.start {
                do {
                    try core.value.start()
                    continuation.resume()
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Drains (no new requests; running ones get `shutdownGracePeriod`), stops the workers and
    /// ends the reactor. Returns when all of that is done.
    /// Safe to call more than once, and after `run()` returned: a stopped reactor takes no
    /// work, and then there is nothing left to drain.
    public func shutdown() async {
        let core = self.core
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queued = core.execute { core in
                core.stoppedHandlers.append { continuation.resume() }
                core.beginShutdown()
            }
            if !queued { continuation.resume() }
        }
        reactor.stop()
        await reactor.stopped()
        context.terminate()
        runtimeDirectory.removeSockets()
    }

    public func run() async throws {
        try await start()
        await withGracefulShutdownHandler {
            await withTaskCancellationHandler {
                await waitUntilStopped()
            } onCancel: {
                self.core.execute { $0.beginShutdown() }
            }
        } onGracefulShutdown: {
            self.core.execute { $0.beginShutdown() }
        }
        reactor.stop()
        await reactor.stopped()
        context.terminate()
        runtimeDirectory.removeSockets()
    }

    private func waitUntilStopped() async {
        let core = self.core
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queued = core.execute { $0.stoppedHandlers.append { continuation.resume() } }
            if !queued { continuation.resume() }
        }
    }

    /// A client of this supervisor, for applications that embed it.
    public func client(configuration: SupervisorClient.Configuration = .init()) async throws -> SupervisorClient {
        try await SupervisorClient.connect(to: frontendEndpoint, configuration: configuration)
    }

    /// The same figures as the STATUS request. Throws `stopped` once the supervisor has shut
    /// down (its routing thread is gone), instead of waiting forever.
    public func status() async throws(SupervisorError) -> SupervisorStatus {
        do { return try await core.run { $0.status() } } catch { throw Self.stoppedError() }
    }

    /// Process ids of the current workers by shard (nil while a shard has none): for tests and
    /// the demo, which kill workers on purpose. Throws `stopped` after shutdown.
    public func workerPIDs() async throws(SupervisorError) -> [Int32?] {
        do { return try await core.run { $0.workers.map { $0?.process.pid } } } catch { throw Self.stoppedError() }
    }

    private static func stoppedError() -> SupervisorError {
        SupervisorError(.stopped, "the supervisor has shut down; start a new one to serve again")
    }

    /// The shard that owns `peer`.
    public func shard(for peer: ID52) -> Int { shardMap.worker(for: peer) }
}
