import ArgumentParser
import Foundation
import Logging
import NIOCore
import PeerpoolCommandSupport
import PeerpoolSupervisor
import ServiceLifecycle

/// `peerpool serve`: the supervisor, its workers, and the wire protocol for applications.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run a supervisor that shards peers over worker processes and serves applications over ZeroMQ.",
        discussion: """
            Applications connect a ZeroMQ DEALER to ipc://<runtime-dir>/frontend.sock and speak \
            docs/wire-protocol.md (examples/python has a client). Standard output gets \
            `SERVING <frontend endpoint> <workers>` once the socket is bound, then the ID52 of \
            each identity. SIGTERM or SIGINT drain (no new requests, running ones get the grace \
            period) and stop the workers. Options override the configuration file. With \
            --metrics, a last line `METRICS http://<host>:<port>/metrics` follows the identities: \
            Prometheus metrics of every shard (label `shard`): opens, failures by code, open \
            latency, bytes each way, connections, streams, restarts and worker state.
            """
    )

    @Option(help: ArgumentHelp("YAML configuration file (deploy/peerpool.yaml documents every key).", valueName: "path"))
    var config: String?

    @Option(help: ArgumentHelp("Worker processes, or auto: one per core (default: the configuration's, else auto).", valueName: "n|auto"))
    var workers: String?

    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("Private directory (0700) for the sockets.", valueName: "path"))
    var runtimeDirectory: String?

    @Option(name: .customLong("key-file"), help: ArgumentHelp("Secret key file of an identity; repeat for more. Without key files (here or in the configuration), the key in PEERPOOL_SECRET_KEY when set, else new identities.", valueName: "path"))
    var keyFiles: [String] = []

    @Option(help: ArgumentHelp("Peers' addresses: a file of `ID52 host:port` lines.", valueName: "path"))
    var addressBook: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp(
        "Serve Prometheus metrics over HTTP at http://<host:port>/metrics (port 0: any free port). Default: off.",
        valueName: "host:port"))
    var metrics: String?

    func validate() throws {
        if let metrics { _ = try HostPort.parse(metrics, option: "--metrics") }
        _ = try workerCount()
    }

    func run() async throws {
        var configuration = try config.map { try SupervisorConfiguration(contentsOfFile: $0) } ?? SupervisorConfiguration()
        if let workers = try workerCount() { configuration.workers = workers }
        if let runtimeDirectory { configuration.runtimeDirectory = runtimeDirectory }
        if !keyFiles.isEmpty { configuration.keyFiles = keyFiles }
        if let addressBook { configuration.addressBook = addressBook }
        var logger = Logger(label: "peerpool.serve", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = logLevel

        // Key files win; else the environment's key (never passed on to the workers); else new ones.
        let fromEnvironment = configuration.keyFiles.isEmpty ? try CommandIdentities.environmentKey() : nil
        let identities = try fromEnvironment.map { [$0] } ?? configuration.loadIdentities()
        let supervisor = try Supervisor(configuration: configuration, identities: identities, logger: logger)
        try await supervisor.start()
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: supervisor)]
        var announcement = "SERVING \(supervisor.frontendEndpoint) \(supervisor.configuration.workers)\n"
        for key in identities { announcement += "\(key.id52)\n" }
        if let metrics {
            let (host, port) = try HostPort.parse(metrics, option: "--metrics")
            let server: MetricsHTTPServer
            do {
                server = try await MetricsHTTPServer(host: host, port: port, logger: logger) { await supervisor.metricsText() }
            } catch {
                await supervisor.shutdown()
                throw CommandError(.bindFailed, "cannot serve metrics on \(metrics): \(Self.reason(error))")
            }
            services.append(.init(service: server))
            let bound = server.localAddress
            let shown = bound.protocol == .inet6 ? "[\(bound.ipAddress ?? host)]" : bound.ipAddress ?? host
            announcement += "METRICS http://\(shown):\(bound.port ?? port)/metrics\n"
        }
        try FileHandle.standardOutput.write(contentsOf: Data(announcement.utf8))

        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

extension ServeCommand {
    /// `--workers`: a count, `auto`, or nil when not given.
    func workerCount() throws -> Int? {
        guard let workers else { return nil }
        if workers == "auto" { return SupervisorConfiguration.defaultWorkers() }
        guard let count = Int(workers), count >= 1 else {
            throw ValidationError("--workers must be a number of workers (1 or more) or auto, not \(workers)")
        }
        return count
    }

    /// What the system said, without NIO's call name ("bind(descriptor:ptr:bytes:): …").
    static func reason(_ error: any Error) -> String {
        if let error = error as? IOError { return String(cString: strerror(error.errnoCode)) }
        return "\(error)"
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
