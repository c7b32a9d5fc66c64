import Foundation
import Synchronization

/// A Python test server from `Tests/PeerpoolDiscoveryTests/Interop/` run with `.venv-test`'s
/// interpreter: it prints "LISTENING <port>" and then one line per event (`dns_server.py`:
/// "QUERY <name>"; `pkarr_relay.py`: "PUT <z32> ..."), so a test can tell what reached it.
/// Killed when released.
public final class PythonTestServer: Sendable {
    private let child: TestChild
    public let port: Int
    /// When `nextLine` stops waiting, so a test waiting for a line that never comes fails
    /// instead of hanging. By default 55 s after the start, just under the tests' one-minute
    /// limit: under heavy load 30 s was seen to run out first.
    private let deadline: ContinuousClock.Instant

    public init(script name: String, arguments: [String] = [], deadline: Duration = .seconds(55)) async throws {
        self.deadline = .now + deadline
        let child = try TestChild(PythonInterop.command(name, script: "Tests/PeerpoolDiscoveryTests/Interop/\(name)", arguments: arguments))
        do {
            let first = try await child.nextLine(within: deadline, "LISTENING")
            guard first.hasPrefix("LISTENING "), let port = Int(first.dropFirst(10)) else {
                throw TestChildError(
                    .unexpectedOutput, child: name,
                    "did not report its port (are dnslib and cryptography in .venv-test? run deploy/setup.sh --test)",
                    transcript: child.transcript)
            }
            self.port = port
            self.child = child
        } catch {
            await child.kill()
            throw error
        }
    }

    /// `dns_server.py` answering from `zone`: name → [[ttl, "TXT value"], ...], or "SERVFAIL"
    /// or "TRUNCATE"; other names get NXDOMAIN.
    public convenience init(dnsZone zone: [String: Any]) async throws {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: zone), as: UTF8.self)
        try await self.init(script: "dns_server.py", arguments: [json])
    }

    /// The next line after LISTENING that `matches` accepts, dropping the lines before it; nil
    /// once the server exited or its deadline passed.
    public func nextLine(matching matches: (String) -> Bool = { _ in true }) async -> String? {
        try? await child.nextLine(matching: matches, within: deadline - .now, earlier: .dropped)
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
