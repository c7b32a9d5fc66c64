import Foundation
import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import Testing

extension IrohInteropTests {
    /// `peerpool serve`'s machinery (a supervisor with two `peerpool worker` processes) with
    /// streams to four iroh peers, two on each shard: the workers' pools speak iroh's handshake
    /// too, and the shard map spreads iroh peers like any others.
    @Test func supervisorWithTwoWorkers_streamsToFourIrohPeers_overBothShards() async throws {
        let shards = ShardMap(workerCount: 2)
        var keys: [SecretKey] = []
        for _ in 0..<10_000 where keys.count < 4 {
            let key = SecretKey.generate()
            // Two peers per shard: shard 0 for the first two, shard 1 for the others.
            if shards.worker(for: key.id52) == (keys.count < 2 ? 0 : 1) { keys.append(key) }
        }
        try #require(keys.count == 4)
        var started: [IrohPeer] = []
        for key in keys { started.append(try await IrohPeer.startServer(secret: key)) }
        let peers = started
        try await withCleanup {
            let directory = try makePrivateDirectory(prefix: "peerpool-iroh-serve")
            defer { try? FileManager.default.removeItem(at: directory) }
            var configuration = SupervisorConfiguration()
            configuration.workers = 2
            configuration.runtimeDirectory = directory.path
            configuration.workerCommand = [peerpoolExecutable.path, "worker"]
            var logger = Logger(label: "iroh-serve-test")
            logger.logLevel = .error
            let supervisor = try Supervisor(configuration: configuration, identities: [SecretKey.generate()], logger: logger)
            try await supervisor.start()
            do {
                let client = try await supervisor.client(configuration: .init(requestTimeout: .seconds(30)))
                for (index, peer) in peers.enumerated() {
                    #expect(supervisor.shard(for: peer.id52) == (index < 2 ? 0 : 1))
                    let address = PeerAddress(peer.id52, at: try peer.socketAddress)
                    let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: address)
                    let text = "hello iroh peer \(index) through shard \(index < 2 ? 0 : 1)"
                    try await stream.write(Array(text.utf8))
                    try await stream.finish()
                    #expect(String(buffer: try await stream.readToEnd(limit: 1024)) == text)
                }
                // Each worker holds its two iroh peers' connections (heartbeats carry the count).
                let deadline = ContinuousClock.now + .seconds(15)
                var counts: [Int] = []
                while ContinuousClock.now < deadline {
                    counts = try await supervisor.status().workers.map(\.connections)
                    if counts == [2, 2] { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(counts == [2, 2], "connections per worker: \(counts)")
                await client.close()
            } catch {
                await supervisor.shutdown()
                throw error
            }
            await supervisor.shutdown()
        } cleanup: {
            for peer in peers { await peer.kill() }
        }
    }
}
