import ArgumentParser

/// Benchmarks that print figures (the transport benchmark lands in a later step).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks that print figures.",
        subcommands: []
    )
}
