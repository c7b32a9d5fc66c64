import Foundation
import Synchronization

/// `Interop/dns_server.py`: a dnslib DNS server on 127.0.0.1, a random UDP port, answering from
/// a fixed zone and reporting each query it receives as a line ("QUERY <name>"), so a test can
/// tell which lookups reached it. Stopped (stdin closed, then terminated) when released.
/// `@unchecked`: the Process and Pipe are only touched in init and deinit.
public final class DNSTestServer: @unchecked Sendable {
    let process: Process
    let stdin: Pipe
    public let port: Int
    /// Every line after LISTENING. Finished when the server exits, or after `deadline` so a
    /// test waiting for a line that never comes fails instead of hanging.
    public let lines: AsyncStream<String>

    /// zone: name → [(ttl, TXT value)], or "SERVFAIL" / "TRUNCATE".
    public init(zone: [String: Any], deadline: Duration = .seconds(30)) async throws {
        let script = PythonInterop.repositoryRoot.appendingPathComponent("Tests/PeerpoolDiscoveryTests/Interop/dns_server.py").path
        let zoneJSON = String(decoding: try JSONSerialization.data(withJSONObject: zone), as: UTF8.self)
        let process = Process()
        process.executableURL = PythonInterop.interpreter
        process.arguments = [script, zoneJSON]
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
            throw TestSupportError("dns_server.py did not report its port (is dnslib in .venv-test? run deploy/setup.sh --test)")
        }
        self.process = process
        self.stdin = stdin
        self.port = port
        self.lines = lines
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
