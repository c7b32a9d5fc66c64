import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `peerpool serve --metrics`: a Prometheus scrape over real HTTP shows every shard, follows a
/// worker's crash and restart, counts opens, failures by code and bytes, and refuses what is not
/// a scrape.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SupervisorMetricsTests {
    /// One scrape: status, content type and body.
    static func scrape(_ url: String, method: HTTPMethod = .GET) async throws -> (status: UInt, type: String, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 4 << 20)
        return (response.status.code, response.headers.first(name: "Content-Type") ?? "", String(buffer: body))
    }

    /// The value of the sample line `name{labels}`, if the body has it.
    static func value(_ body: String, _ sample: String) -> Double? {
        for line in body.split(separator: "\n") where line.hasPrefix(sample + " ") {
            return Double(line.dropFirst(sample.count + 1))
        }
        return nil
    }

    @Test func scrape_showsEveryShard_andFollowsACrashAndRestart() async throws {
        try await ServeProcess.with(workers: 2, arguments: ["--metrics", "127.0.0.1:0"]) { serve, _, pids in
            let url = try #require(serve.metricsURL)
            let first = try await Self.scrape(url)
            #expect(first.status == 200)
            #expect(first.type.hasPrefix("text/plain; version=0.0.4"), "\(first.type)")
            for shard in 0..<2 {
                #expect(Self.value(first.body, #"peerpool_worker_state{shard="\#(shard)",state="running"}"#) == 1, "\(first.body)")
                #expect(Self.value(first.body, #"peerpool_worker_restarts_total{shard="\#(shard)"}"#) == 0, "\(first.body)")
            }
            #expect(Self.value(first.body, "peerpool_clients") == 1, "\(first.body)")
            // A count since start is a counter, so rate() and increase() work on it.
            #expect(first.body.contains("# TYPE peerpool_clients_overrun_total counter"), "\(first.body)")
            #expect(first.body.contains("# TYPE peerpool_worker_restarts_total counter"), "\(first.body)")

            kill(pids[0], SIGKILL)
            let after = try await SupervisorFixture.waitForValue("the scrape to show shard 0's restart") { () async throws -> String? in
                let body = try await Self.scrape(url).body
                let restarted = Self.value(body, #"peerpool_worker_restarts_total{shard="0"}"#) == 1
                let running = Self.value(body, #"peerpool_worker_state{shard="0",state="running"}"#) == 1
                return restarted && running ? body : nil
            }
            #expect(Self.value(after, #"peerpool_worker_restarts_total{shard="1"}"#) == 0, "\(after)")
        }
    }

    @Test func otherPathsAndMethods_areRefused_andTheServerServesOn() async throws {
        let serve = try await ServeProcess(workers: 1, arguments: ["--metrics", "127.0.0.1:0"])
        do {
            let url = try #require(serve.metricsURL)
            let base = String(url.dropLast("/metrics".count))
            #expect(try await Self.scrape(base + "/").status == 404)
            #expect(try await Self.scrape(base + "/metrics/../etc/passwd").status == 404)
            #expect(try await Self.scrape(url, method: .POST).status == 405)
            #expect(try await Self.scrape(url).status == 200)
        } catch {
            await serve.kill()
            throw error
        }
        await serve.kill()
    }

    @Test func aTakenMetricsPort_failsServeWithAClearError() async throws {
        let taken = try await ServeProcess(workers: 1, arguments: ["--metrics", "127.0.0.1:0"])
        let url = try #require(taken.metricsURL)
        let port = String(url.split(separator: ":").last!.prefix { $0.isNumber })
        let directory = try ScratchDirectory()
        let second = try await TestChild.run(
            .peerpool(["serve", "--workers", "1", "--runtime-dir", directory.path, "--metrics", "127.0.0.1:\(port)"]),
            within: SupervisorFixture.deadline)
        let status = second.status
        let log = second.stderr
        #expect(status != nil && status != 0, "\(String(describing: status))")
        #expect(log.contains("bind_failed") && log.contains("cannot serve metrics on 127.0.0.1:\(port)"), "\(log)")
        directory.remove()
        await taken.kill()
    }

    /// What passes through the supervisor is counted on the owning shard: opens, the echo's bytes
    /// each way, an open's latency, and a failure by its code.
    @Test func opensBytesLatencyAndFailures_areCountedOnTheOwningShard() async throws {
        let keys = [SecretKey.generate()]
        let listener = try await PeerListener(keys: keys)
        let silent = try SilentPeer()
        try await ServeProcess.with(workers: 2, arguments: ["--metrics", "127.0.0.1:0"]) { serve, client, _ in
            let url = try #require(serve.metricsURL)
            let live = keys[0].id52
            let liveShard = ShardMap(workerCount: 2).worker(for: live)
            let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(live))
            #expect(try await stream.echoLine("hello\n") == "hello\n")

            let dead = SecretKey.generate().id52
            let deadShard = ShardMap(workerCount: 2).worker(for: dead)
            let failure = await outcome { _ = try await client.getStream(ProtocolHeader(.ping), to: silent.peer(dead), timeout: .milliseconds(300)) }
            #expect(failure.code == "timeout", "\(failure)")

            let body = try await Self.scrape(url).body
            let opens = (0..<2).map { Self.value(body, #"peerpool_opens_total{shard="\#($0)"}"#) ?? 0 }
            #expect(opens[liveShard] >= 1 && opens.reduce(0, +) == 2, "\(opens) \(body)")
            #expect(Self.value(body, #"peerpool_data_bytes_total{shard="\#(liveShard)",direction="to_peer"}"#) == 6, "\(body)")
            #expect(Self.value(body, #"peerpool_data_bytes_total{shard="\#(liveShard)",direction="from_peer"}"#) == 6, "\(body)")
            #expect(Self.value(body, #"peerpool_open_duration_seconds_count{shard="\#(liveShard)"}"#) == 1, "\(body)")
            #expect(Self.value(body, #"peerpool_open_failures_total{shard="\#(deadShard)",code="timeout"}"#) == 1, "\(body)")
        }
    }
}
