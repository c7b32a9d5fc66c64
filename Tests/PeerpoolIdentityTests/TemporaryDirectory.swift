import Foundation

/// Runs `body` with the path of a fresh 0700 directory under the system temporary directory and
/// removes the directory afterwards, whatever `body` does.
func withTemporaryDirectory<Result>(_ body: (String) throws -> Result) throws -> Result {
    let url = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url.path)
}

/// `withTemporaryDirectory` for a `body` that awaits (one that runs openssl).
func withTemporaryDirectory<Result>(
    isolation: isolated (any Actor)? = #isolation, _ body: (String) async throws -> Result
) async throws -> Result {
    let url = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: url) }
    return try await body(url.path)
}

/// A fresh 0700 directory under the system temporary directory.
private func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("PeerpoolIdentityTests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(
        at: url,
        withIntermediateDirectories: false,
        attributes: [.posixPermissions: 0o700]
    )
    return url
}

/// The permission bits of the file at `path`.
func permissions(ofFile path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
}

func setPermissions(_ mode: Int, ofFile path: String) throws {
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
}

/// Creates `path` with `contents` and mode `mode`.
func writeFile(_ path: String, contents: String, mode: Int) throws {
    try Data(contents.utf8).write(to: URL(fileURLWithPath: path))
    try setPermissions(mode, ofFile: path)
}
