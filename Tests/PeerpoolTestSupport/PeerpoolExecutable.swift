import Foundation

/// The `peerpool` executable built next to the test bundle.
public var peerpoolExecutable: URL { builtExecutable("peerpool") }

/// The `peerpool-bench` executable (benchmarks, and the raw QUIC `peer` tests kill) built next
/// to the test bundle.
public var peerpoolBenchExecutable: URL { builtExecutable("peerpool-bench") }

private func builtExecutable(_ name: String) -> URL {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [bundleDirectory.appendingPathComponent(name),
                      bundleDirectory.deletingLastPathComponent().appendingPathComponent(name)]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
}
