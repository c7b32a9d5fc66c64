import ArgumentParser

/// `peerpool-bench`: benchmarks that print figures, and the peer process they (and tests in
/// other processes) talk to. Its own executable, so the shipped `peerpool` command carries no
/// benchmark code; it runs `peerpool` (found next to itself) for peers and workers.
@main
struct PeerpoolBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peerpool-bench",
        abstract: "Benchmarks of peerpool that print figures, each side by side with its anchor.",
        subcommands: [BenchTransportCommand.self, BenchPeerCommand.self, BenchPoolCommand.self, BenchSupervisorCommand.self, BenchIrohCommand.self, BenchRelayCommand.self, BenchCodecsCommand.self, BenchZMQEchoCommand.self]
    )
}
