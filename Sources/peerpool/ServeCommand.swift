import ArgumentParser
import Foundation
import Logging
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
            period) and stop the workers. Options override the configuration file.
            """
    )

    @Option(help: ArgumentHelp("YAML configuration file (deploy/peerpool.yaml documents every key).", valueName: "path"))
    var config: String?

    @Option(help: "Worker processes (default: the number of cores).")
    var workers: Int?

    @Option(name: .customLong("runtime-dir"), help: ArgumentHelp("Private directory (0700) for the sockets.", valueName: "path"))
    var runtimeDirectory: String?

    @Option(name: .customLong("key-file"), help: ArgumentHelp("Secret key file of an identity; repeat for more.", valueName: "path"))
    var keyFiles: [String] = []

    @Option(help: ArgumentHelp("Peers' addresses: a file of `ID52 host:port` lines.", valueName: "path"))
    var addressBook: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "level"))
    var logLevel: Logger.Level = .info

    func run() async throws {
        var configuration = try config.map { try SupervisorConfiguration(contentsOfFile: $0) } ?? SupervisorConfiguration()
        if let workers { configuration.workers = workers }
        if let runtimeDirectory { configuration.runtimeDirectory = runtimeDirectory }
        if !keyFiles.isEmpty { configuration.keyFiles = keyFiles }
        if let addressBook { configuration.addressBook = addressBook }
        var logger = Logger(label: "peerpool.serve", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = logLevel

        let identities = try configuration.loadIdentities()
        let supervisor = try Supervisor(configuration: configuration, identities: identities, logger: logger)
        try await supervisor.start()
        var announcement = "SERVING \(supervisor.frontendEndpoint) \(supervisor.configuration.workers)\n"
        for key in identities { announcement += "\(key.id52)\n" }
        try FileHandle.standardOutput.write(contentsOf: Data(announcement.utf8))

        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: supervisor)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
