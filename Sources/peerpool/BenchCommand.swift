import ArgumentParser

/// `peerpool bench`: benchmarks that print figures, and the peer process they (and tests in
/// other processes) talk to.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print figures.",
        subcommands: [BenchTransportCommand.self, BenchPeerCommand.self, BenchPoolCommand.self, BenchSupervisorCommand.self]
    )
}
