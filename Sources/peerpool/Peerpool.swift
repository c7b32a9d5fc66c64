import ArgumentParser

/// `peerpool`: authenticated QUIC streams to many peers.
@main
struct Peerpool: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peerpool",
        abstract: "Authenticated QUIC connections to many peers, named by ID52.",
        subcommands: [
            DemoCommand.self, ServeCommand.self, StatusCommand.self, IDCommand.self, ListenCommand.self,
            PingCommand.self, StreamCommand.self, WorkerCommand.self,
        ]
    )
}
