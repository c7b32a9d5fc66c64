import Foundation
import Synchronization

/// A Python test server from `Tests/PeerpoolDiscoveryTests/Interop/` run with `.venv-test`'s
/// interpreter: it prints "LISTENING <port>" and then one line per event (`dns_server.py`:
/// "QUERY <name>"; `pkarr_relay.py`: "PUT <z32> ..."), so a test can tell what reached it.
/// Stopped (stdin closed, then terminated) when released.
/// `@unchecked`: the Process and Pipe are only touched in init and deinit.
public final class PythonTestServer: @unchecked Sendable {
    let process: Process
    let stdin: Pipe
    public let port: Int
    /// Every line after LISTENING. Finished when the server exits, or after `deadline` so a
    /// test waiting for a line that never comes fails instead of hanging. The default is just
    /// under the tests' one-minute limit: under heavy load 30 s was seen to run out first.
    public let lines: AsyncStream<String>

    public init(script name: String, arguments: [String] = [], deadline: Duration = .seconds(55)) async throws {
        let script = PythonInterop.repositoryRoot.appendingPathComponent("Tests/PeerpoolDiscoveryTests/Interop/\(name)").path
        let process = Process()
        process.executableURL = PythonInterop.interpreter
        process.arguments = [script] + arguments
        let output = Pipe(), stdin = Pipe()
        process.standardOutput = output
        process.standardInput = stdin
        let (lines, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(10_000))
        readLines(from: output.fileHandleForReading, limit: 4096, line: { continuation.yield($0) }, atEnd: { continuation.finish() })
        try process.run()
        Task {
            try? await Task.sleep(for: deadline)
            continuation.finish()
        }
        var iterator = lines.makeAsyncIterator()
        guard let first = await iterator.next(), first.hasPrefix("LISTENING "), let port = Int(first.dropFirst(10)) else {
            process.terminate()
            throw TestSupportError("\(name) did not report its port (are dnslib and cryptography in .venv-test? run deploy/setup.sh --test)")
        }
        self.process = process
        self.stdin = stdin
        self.port = port
        self.lines = lines
    }

    /// `dns_server.py` answering from `zone`: name → [[ttl, "TXT value"], ...], or "SERVFAIL"
    /// or "TRUNCATE"; other names get NXDOMAIN.
    public convenience init(dnsZone zone: [String: Any]) async throws {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: zone), as: UTF8.self)
        try await self.init(script: "dns_server.py", arguments: [json])
    }

    deinit {
        try? stdin.fileHandleForWriting.close()
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

/// A clock the test moves by hand, so TTL expiry needs no sleeping.
public final class ManualClock: Sendable {
    public init() {}
    private let base = ContinuousClock.now
    private let offset = Mutex<Duration>(.zero)

    public func now() -> ContinuousClock.Instant { base + offset.withLock { $0 } }
    public func advance(by duration: Duration) { offset.withLock { $0 += duration } }
}
