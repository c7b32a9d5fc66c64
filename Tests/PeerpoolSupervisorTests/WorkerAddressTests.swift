import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Testing

/// One OPEN with an address the worker cannot send to used to close the worker's UDP socket for
/// good: the shard kept heartbeating and timed out every later request. Now it fails that request
/// alone, and workers reach IPv6 and IPv4 peers from one dual-stack socket.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct WorkerAddressTests {
    @Test func unsendableAddresses_failTheirRequest_andTheShardServesOn() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let client = embedded.client
            let peer = listener.peer(keys[0].id52)
            #expect(try await client.echo("before", to: peer) == "before")
            let pids = try await embedded.runningPIDs()

            for hostPort in ["255.255.255.255:1", "224.0.0.1:4433", "[::ffff:255.255.255.255]:1", "0.0.0.0:4433"] {
                let stranger = try PeerAddress(parsing: "\(SecretKey.generate().id52)@\(hostPort)")
                let failure = await outcome { _ = try await client.echo("x", to: stranger) }
                #expect(failure.code == "address_unreachable", "\(hostPort): \(failure)")
                #expect(failure.message.contains("cannot send to"), "\(hostPort): \(failure)")
                // The same shard, same worker, same socket: still serving.
                #expect(try await client.echo("after \(hostPort)", to: peer) == "after \(hostPort)")
            }
            #expect(try await embedded.runningPIDs() == pids, "the worker was restarted")
        }
        await listener.stop()
    }

    @Test func ipv6WithoutBrackets_isABadRequest_namingTheAddress() async throws {
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let dealer = try RawDealer(endpoint: embedded.supervisor.frontendEndpoint)
            let remote = SecretKey.generate().id52
            dealer.send(.open, id: 7, body: Array(openJSON(remote: remote, address: "::1:80").utf8))
            let answer = try await dealer.expect(.error, id: 7)
            #expect(answer.error.code.rawValue == "bad_request", "\(answer)")
            #expect(answer.error.message.contains("::1:80"), "\(answer)")
            await dealer.close()
        }
    }

    @Test func dualStackWorker_reachesAnIPv6Peer_andAnIPv4Peer() async throws {
        let keys = try SupervisorFixture.keys(on: [0, 0], workers: 1)
        let listener4 = try await PeerListener(keys: [keys[0]])
        let peer6: QUICEndpoint
        do {
            peer6 = try await QUICEndpoint.bind(host: "::1", port: 0, identities: [keys[1]])
        } catch {
            await listener4.stop()
            Issue.record("this host has no IPv6 loopback: \(error)")
            return
        }
        let acceptor = StreamAcceptor(endpoint: peer6, configuration: AcceptorConfiguration(protocols: [.generic("echo")])) { incoming in
            do {
                while let chunk = try await incoming.stream.read() { try await incoming.stream.write(chunk) }
                try await incoming.stream.finish()
            } catch {}
        }
        let serving = Task { try await acceptor.run() }
        try await EmbeddedSupervisor.with(workers: 1) { embedded in
            let v6 = try PeerAddress(parsing: "\(keys[1].id52)@[::1]:\(peer6.localAddress.port!)")
            #expect(try await embedded.client.echo("over IPv6", to: v6) == "over IPv6")
            #expect(try await embedded.client.echo("over IPv4", to: listener4.peer(keys[0].id52)) == "over IPv4")
        }
        serving.cancel()
        await peer6.close()
        await listener4.stop()
    }
}
