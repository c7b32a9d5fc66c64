import Foundation
import PeerpoolTestSupport
import Synchronization
import Testing

/// Runs `IrohInteropTests` (this same test binary, filtered) inside a fresh network namespace
/// that holds only loopback: `unshare --net`, then `ip link set lo up`. iroh's port mapper
/// probes the LAN gateway and cannot be switched off, so iroh must never run in the machine's
/// own namespace; inside, the only reachable addresses are 127.0.0.1 and ::1. The namespace
/// dies with its last process. Needs root (CI runs tests as root) or unprivileged user
/// namespaces (`unshare --map-root-user`, tried second).
@Suite(.enabled(if: !LoopbackNamespace.requested, "this is the outer run"))
struct IrohNamespaceTests {
    @Test(.timeLimit(.minutes(8)))
    func irohInteropTests_passInsideALoopbackOnlyNamespace() async throws {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0])
        let filter = ["--testing-library", "swift-testing", "--filter", "IrohInteropTests"]
        var lastFailure = ""
        for userNamespace in [false, true] {
            let result = try await Self.run(testBinary: testBinary, arguments: filter, userNamespace: userNamespace)
            if result.namespaceFailed {
                lastFailure = result.output
                continue
            }
            // The inner run's verdicts and figures, for the log.
            for line in result.output.split(separator: "\n") where line.contains(" passed after ") || line.contains(" failed after ") || line.contains("recorded an issue")
                || line.contains("iroh echo") {
                print("[loopback namespace] \(line)")
            }
            #expect(result.status == 0, "IrohInteropTests failed inside the namespace:\n\(result.output)")
            // A run that skipped or missed the suite proves nothing.
            #expect(result.output.contains("IrohInteropTests") && !result.output.contains("skipped"),
                    "the namespaced run did not run IrohInteropTests:\n\(result.output)")
            return
        }
        Issue.record("""
            cannot create a loopback-only network namespace for the iroh tests: run the tests as root \
            (CI does) or enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1). \
            Last attempt said:\n\(lastFailure)
            """)
    }

    /// Runs the test binary under `unshare --net` (plus `--map-root-user` if `userNamespace`)
    /// with loopback up; returns its exit status and output (stdout and stderr interleaved).
    private static func run(
        testBinary: URL, arguments: [String], userNamespace: Bool
    ) async throws -> (status: Int32, output: String, namespaceFailed: Bool) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        // The marker tells a failure to set up the namespace from a failure of the tests.
        let script = #"ip link set lo up || { echo "NAMESPACE_SETUP_FAILED"; exit 97; }; exec "$0" "$@""#
        process.arguments = (userNamespace ? ["--map-root-user"] : []) + ["--net", "--", "/bin/sh", "-c", script, testBinary.path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment[LoopbackNamespace.environmentVariable] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let lines = Mutex<[String]>([])
        let finished = AsyncStream<Void>.makeStream()
        readLines(from: output.fileHandleForReading, limit: 1 << 16) { line in
            lines.withLock { $0.append(line) }
        } atEnd: {
            finished.continuation.finish()
        }
        // Bounded by this test's time limit, which cancels us: then the inner run is killed; its
        // iroh peers exit when their stdin (held by the inner run) closes.
        let pid = process.processIdentifier
        await withTaskCancellationHandler {
            for await _ in finished.stream {}
        } onCancel: {
            kill(pid, SIGKILL)
        }
        process.waitUntilExit()
        let text = lines.withLock { $0.joined(separator: "\n") }
        let namespaceFailed = process.terminationStatus != 0
            && (text.contains("NAMESPACE_SETUP_FAILED") || text.contains("unshare: "))
        return (process.terminationStatus, text, namespaceFailed)
    }
}
