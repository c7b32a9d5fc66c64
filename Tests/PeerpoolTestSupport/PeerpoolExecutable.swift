import Foundation

/// The `peerpool` executable built next to the test bundle.
public var peerpoolExecutable: URL {
    let bundleDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    let candidates = [bundleDirectory.appendingPathComponent("peerpool"),
                      bundleDirectory.deletingLastPathComponent().appendingPathComponent("peerpool")]
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
}
