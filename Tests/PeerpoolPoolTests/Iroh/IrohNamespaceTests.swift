import Foundation
import PeerpoolTestSupport
import Testing

/// Runs `IrohInteropTests` (this same test binary, filtered) inside a fresh network namespace
/// that holds only loopback: `unshare --net`, then `ip link set lo up`. iroh's port mapper
/// probes the LAN gateway and cannot be switched off, so iroh must never run in the machine's
/// own namespace; inside, the only reachable addresses are 127.0.0.1 and ::1. The namespace
/// dies with its last process. Needs root (CI runs tests as root) or unprivileged user
/// namespaces (`unshare --map-root-user`, tried second).
///
/// The relay suites (`IrohRelayHarnessTests` and its nested `Peerpool`) run in a namespace of
/// their own that also has a mount namespace (`unshare --net --mount`), where a resolv.conf naming
/// 127.0.0.1 is bind-mounted over /etc/resolv.conf: iroh's DNS address lookup asks the system
/// resolver, and the tests answer on 127.0.0.1:53. They block UDP with nftables.
@Suite(.enabled(if: !LoopbackNamespace.requested, "this is the outer run"), .serialized)
struct IrohNamespaceTests {
    @Test(.timeLimit(.minutes(8)))
    func irohInteropTests_passInsideALoopbackOnlyNamespace() async throws {
        try await runInside(filters: ["IrohInteropTests"], suite: "IrohInteropTests", skipsAllowed: false)
    }

    @Test(.timeLimit(.minutes(8)))
    func irohRelayTests_passInsideALoopbackOnlyNamespaceWithItsOwnResolver() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-resolv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let resolvConf = directory.appendingPathComponent("resolv.conf")
        try Data("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n".utf8).write(to: resolvConf)
        // The harness (iroh to iroh) and, nested in it, peerpool and iroh through the relay.
        try await runInside(
            filters: ["IrohRelayHarnessTests"], suite: "IrohRelayHarnessTests", skipsAllowed: false,
            resolvConf: resolvConf)
    }

    /// Runs the suites `filters` name inside a fresh namespace and checks that `suite` ran and
    /// passed; `resolvConf` also gives the namespace a mount namespace with that file over
    /// /etc/resolv.conf.
    private func runInside(filters: [String], suite: String, skipsAllowed: Bool, resolvConf: URL? = nil) async throws {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0])
        let filter = ["--testing-library", "swift-testing"] + filters.flatMap { ["--filter", $0] }
        var lastFailure = ""
        for userNamespace in [false, true] {
            let result = try await Self.run(testBinary: testBinary, arguments: filter, userNamespace: userNamespace, resolvConf: resolvConf)
            if result.namespaceFailed {
                lastFailure = result.output
                continue
            }
            // The inner run's verdicts and figures, for the log.
            for line in result.output.split(separator: "\n") where line.contains(" passed after ") || line.contains(" failed after ") || line.contains("recorded an issue")
                || line.contains("iroh echo") || line.contains("iroh relay") {
                print("[loopback namespace] \(line)")
            }
            #expect(result.status == 0, "\(filters) failed inside the namespace:\n\(result.output)")
            // A run that skipped or missed the suite proves nothing.
            #expect(result.output.contains("Suite \(suite) passed") && (skipsAllowed || !result.output.contains("skipped")),
                    "the namespaced run did not run \(suite):\n\(result.output)")
            return
        }
        Issue.record("""
            cannot create a loopback-only network namespace for the iroh tests: run the tests as root \
            (CI does) or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1). \
            Last attempt said:\n\(lastFailure)
            """)
    }

    /// Runs the test binary under `unshare --net` (plus `--map-root-user` if `userNamespace`)
    /// with loopback up, and with `resolvConf` bind-mounted over /etc/resolv.conf in a private
    /// mount namespace if given; returns its exit status and output (stdout and stderr
    /// interleaved).
    private static func run(
        testBinary: URL, arguments: [String], userNamespace: Bool, resolvConf: URL?
    ) async throws -> (status: Int32, output: String, namespaceFailed: Bool) {
        // The marker tells a failure to set up the namespace from a failure of the tests.
        let mount = resolvConf == nil ? "" : #"mount --bind "$\#(LoopbackNamespace.resolvConfVariable)" /etc/resolv.conf || { echo "NAMESPACE_SETUP_FAILED"; exit 97; }; "#
        let script = #"ip link set lo up || { echo "NAMESPACE_SETUP_FAILED"; exit 97; }; "# + mount + #"exec "$0" "$@""#
        let namespaces = resolvConf == nil ? ["--net"] : ["--net", "--mount"]
        var command = TestChild.Command.program(
            "/usr/bin/unshare",
            (userNamespace ? ["--map-root-user"] : []) + namespaces + ["--", "/bin/sh", "-c", script, testBinary.path] + arguments)
        var environment = ProcessInfo.processInfo.environment
        environment[LoopbackNamespace.environmentVariable] = "1"
        environment[LoopbackNamespace.resolvConfVariable] = resolvConf?.path
        command.environment = environment
        command.standardInput = .null
        command.standardError = .standardOutput
        // Bounded by this test's time limit, which cancels us: then the inner run is killed; its
        // iroh peers exit when their stdin (held by the inner run) closes.
        let result = try await TestChild.run(command, within: .seconds(8 * 60))
        let text = result.stdout
        let status = result.termination?.status ?? -1
        let namespaceFailed = status != 0 && (text.contains("NAMESPACE_SETUP_FAILED") || text.contains("unshare: "))
        return (status, text, namespaceFailed)
    }
}
