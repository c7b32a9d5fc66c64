import PeerpoolCommandSupport
import Foundation
import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolSupervisor

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One side of `bench supervisor`: a `StreamProvider` (the in-process pool or a supervisor's
/// client) and its name for the printed figures. Generic rather than an existential, so that
/// the measured path is the provider's `getStream` and nothing else.
struct BenchSide<Provider: StreamProvider>: Sendable {
    /// "pool" or "supervisor".
    let name: String
    let provider: Provider

    func open(_ header: ProtocolHeader, to peer: PeerAddress) async throws -> Provider.Stream {
        try await provider.getStream(header, to: peer, from: nil)
    }
}

/// A `PeerPool` in this process, on an endpoint of its own.
struct BenchInProcessPool: Sendable {
    let endpoint: QUICEndpoint
    let pool: PeerPool

    static func start() async throws -> BenchInProcessPool {
        let endpoint = try await QUICEndpoint.bind(
            host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], acceptIncoming: false)
        return BenchInProcessPool(endpoint: endpoint, pool: PeerPool(endpoint: endpoint))
    }

    var side: BenchSide<PeerPool> { BenchSide(name: "pool", provider: pool) }

    func stop() async {
        await pool.shutdown(gracePeriod: .seconds(1))
        await endpoint.close()
    }
}

/// An embedded `Supervisor` running `<this executable> worker` processes, with a private
/// runtime directory (mkdtemp, so 0700 and never a real supervisor's) and one client.
///
/// Restarts are not rate-limited (`maxRestarts` is high): the crash part kills workers on
/// purpose, several times within a restart window, and measures restarts, not backoff.
struct BenchSupervisorHarness: Sendable {
    let supervisor: Supervisor
    let client: SupervisorClient
    let directory: String
    let workers: Int

    /// - Parameter window: the flow-control window of both directions (the supervisor's
    ///   `defaultWindow`, the workers' receive window, and the client's `receiveWindow`); nil
    ///   for the library's defaults.
    static func start(workers: Int, executable: String, window: Int? = nil) async throws -> BenchSupervisorHarness {
        let directory = try makeDirectory()
        do {
            var configuration = SupervisorConfiguration()
            configuration.workers = workers
            configuration.runtimeDirectory = directory
            configuration.workerCommand = [executable, "worker"]
            configuration.maxRestarts = 1_000_000
            var clientConfiguration = SupervisorClient.Configuration()
            if let window {
                configuration.maxWindow = max(configuration.maxWindow, window)
                configuration.defaultWindow = window
                clientConfiguration.receiveWindow = window
            }
            // Critical only, from the supervisor and (it passes its level on) its workers: their
            // lines (ready, stopped, and an error for each worker killed on purpose) would bury the figures.
            var logger = Logger(label: "peerpool.bench", factory: { StreamLogHandler.standardError(label: $0) })
            logger.logLevel = .critical
            let supervisor = try Supervisor(configuration: configuration, identities: [SecretKey.generate()], logger: logger)
            try await supervisor.start()
            let client: SupervisorClient
            do {
                client = try await supervisor.client(configuration: clientConfiguration)
                _ = try await waitForWorkers(supervisor)
            } catch {
                await supervisor.shutdown()
                throw error
            }
            return BenchSupervisorHarness(supervisor: supervisor, client: client, directory: directory, workers: workers)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    var side: BenchSide<SupervisorClient> { BenchSide(name: "supervisor", provider: client) }

    func stop() async {
        await client.close()
        await supervisor.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// The workers' pids once every shard's worker is running (within 20 s).
    static func waitForWorkers(_ supervisor: Supervisor) async throws -> [Int32] {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            let status = try await supervisor.status()
            if status.workers.allSatisfy({ $0.state == "running" && $0.pid != nil }) {
                return status.workers.map { $0.pid ?? -1 }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CommandError(.timedOut, "the supervisor's workers were not all running within 20 s")
    }

    /// A short private directory: `<dir>/frontend.sock` must fit a Unix socket address.
    private static func makeDirectory() throws -> String {
        var template = Array("/tmp/ppbench-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw CommandError(.spawnFailed, "mkdtemp /tmp/ppbench-XXXXXX: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }
}

/// Formatting shared by the parts of `bench supervisor`.
enum BenchText {
    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    static func microseconds(_ duration: Duration) -> String {
        fixed(duration.benchSeconds * 1e6, 0) + " µs"
    }

    static func milliseconds(_ duration: Duration) -> String {
        fixed(duration.benchMilliseconds, 1) + " ms"
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}
