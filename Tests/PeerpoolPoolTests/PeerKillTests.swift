import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

@Suite(.timeLimit(.minutes(3)))
struct PoolPeerKillTests {
    @Test func peerKilledWithRequestsInFlight_everyWaiterFailsClearly_noneHangs() async throws {
        let listener = try await ListenProcess(within: .seconds(20))
        // Short enough to see a dead peer quickly, long enough that a loaded 2-core machine
        // (the whole suite runs in parallel) never starves a live one into an idle timeout.
        let idle = Duration.seconds(5)
        try await withPool(
            poolConfiguration { $0.ackTimeout = .seconds(5); $0.connectTimeout = .seconds(15) },
            quic: quicConfiguration { $0.idleTimeout = idle }
        ) { pool in
            let peer = try listener.peer()
            #expect(try await echoRoundTrip(pool, peer, "warm") == "warm")

            // 300 requests, each opening an echo stream and waiting for the echo; kill mid-way.
            let started = Counter2()
            let results = Task {
                await withTaskGroup(of: String.self) { group in
                    for i in 0..<300 {
                        group.addTask {
                            await started.add()
                            do {
                                let stream = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer)
                                try await stream.write(Array("\(i)".utf8))
                                // No finish: the echo never ends, so every stream is still open when the peer dies.
                                _ = try await stream.read()
                                _ = try await stream.read()
                                return "no error"
                            } catch let error as PoolError {
                                return "PoolError \(error.code)"
                            } catch let error as StreamProtocolError {
                                return "StreamProtocolError \(error.code)"
                            } catch let error as QUICError {
                                return "QUICError \(error.code): \(error.message)"
                            } catch {
                                return "other \(error)"
                            }
                        }
                    }
                    var outcomes: [String] = []
                    for await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
            }
            while await started.value < 300 { await Task.yield() }
            await listener.kill()
            let clock = ContinuousClock()
            let killedAt = clock.now
            let outcomes = try await within(idle + .seconds(15), "the 300 requests to fail") { await results.value }
            #expect(clock.now - killedAt < idle + .seconds(10))
            #expect(outcomes.count == 300)
            // Every request failed, each with an error that names what happened.
            #expect(!outcomes.contains("no error"))
            let unclear = outcomes.filter { !($0.hasPrefix("PoolError") || $0.contains("connection closed") || $0.contains("StreamProtocolError")) }
            #expect(unclear.isEmpty, "\(Set(unclear))")

            // The peer is gone: new requests fail fast with a connect error, not a hang.
            let error = await #expect(throws: PoolError.self) { _ = try await pool.getStream(ProtocolHeader(.generic("echo")), to: peer) }
            // connect_failed, or connection_lost when the request met the dying connection first.
            #expect(error?.code == .connectFailed || error?.code == .connectionLost, "\(String(describing: error))")
        }
    }
}

actor Counter2 {
    private(set) var value = 0
    func add() { value += 1 }
}
