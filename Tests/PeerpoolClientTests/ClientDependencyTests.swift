import Foundation
import PeerpoolTestSupport
import Testing

/// The client links without the QUIC stack: PeerpoolClient's dependency closure in the package
/// manifest (as `swift package dump-package` reads it) names no QUIC, pool or ngtcp2 target.
/// An application that only talks to a running supervisor then needs neither ngtcp2 nor GnuTLS.
@Suite(.timeLimit(.minutes(2)))
struct ClientDependencyTests {
    static let forbidden: Set<String> = ["PeerpoolQUIC", "PeerpoolPool", "CNGTCP2", "PeerpoolSupervisor", "CLinuxProcess"]

    @Test func clientClosure_namesNoQUICTarget() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        // A scratch path of its own: the package's `.build` is locked by the `swift test` running this.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-dump-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var command = TestChild.Command.program(
            "/usr/bin/env", ["swift", "package", "--package-path", root.path, "--scratch-path", scratch.path, "dump-package"])
        command.standardInput = .null
        // Bounded by the suite's time limit too: a run killed there reports its output.
        let output = try await TestChild.run(command, within: .seconds(120))
        try #require(output.status == 0, "swift package dump-package failed: \(output.stderr.suffix(2000))")
        let data = Data(output.stdout.utf8)

        // Each target's dependencies on other targets of this package, by name.
        let manifest = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let targets = try #require(manifest["targets"] as? [[String: Any]])
        var dependencies: [String: [String]] = [:]
        for target in targets {
            guard let name = target["name"] as? String else { continue }
            let entries = target["dependencies"] as? [[String: Any]] ?? []
            dependencies[name] = entries.compactMap { entry in
                // {"byName": ["X", null]} or {"target": ["X", null]}; products of other packages are left out.
                ((entry["byName"] ?? entry["target"]) as? [Any])?.first as? String
            }
        }
        var closure: Set<String> = []
        var queue = ["PeerpoolClient"]
        while let next = queue.popLast() {
            guard closure.insert(next).inserted else { continue }
            queue += dependencies[next] ?? []
        }
        #expect(closure.contains("PeerpoolWire") && closure.contains("PeerpoolProtocol"), "\(closure.sorted())")
        #expect(closure.isDisjoint(with: Self.forbidden), "PeerpoolClient reaches \(closure.intersection(Self.forbidden).sorted())")
    }
}
