import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolSupervisor
import PeerpoolTestSupport
import PeerpoolWire
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `Supervisor` embedded in the test process with real `peerpool worker` processes and a real
/// `peerpool listen` peer: start, status, streams through it, and sharding, the last checked by
/// killing workers and by the workers' own connection counts.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct SupervisorTests {
    @Test func start_runsEveryWorker_statusShowsThem_shutdownEndsThem() async throws {
        let embedded = try await EmbeddedSupervisor.start(workers: 2)
        let pids: [Int32]
        let workers: [ProcessIdentity]
        do {
            pids = try await embedded.runningPIDs()
            workers = pids.map(ProcessIdentity.init)
            #expect(Set(pids).count == 2)
            #expect(workers.allSatisfy { $0.isAlive })
            #expect(try await embedded.supervisor.workerPIDs() == pids)

            // Over the wire, as `peerpool status` asks.
            let status = try await embedded.client.status()
            #expect(status.version == 1)
            #expect(status.pid == getpid())
            #expect(status.clients >= 1)
            #expect(status.workers.map(\.index) == [0, 1])
            #expect(status.workers.map(\.pid) == pids)
            #expect(status.workers.allSatisfy { $0.state == "running" && $0.restarts == 0 && $0.uptimeSeconds != nil })
            #expect(status.streams == 0 && status.requests == 0)
        } catch {
            await embedded.stop()
            embedded.directory.remove()
            throw error
        }
        await embedded.stop()
        embedded.directory.remove()
        // stop() waits (bounded) for the pids to go and flags survivors; say it plainly too.
        #expect(!workers.contains { $0.isAlive }, "workers \(workers.filter { $0.isAlive }) outlived shutdown")
    }

    /// The secret keys reach workers on their standard input only: not on a command line, not in
    /// an environment, not in a file of the runtime directory (which is 0700).
    @Test func secretKeys_areNotOnCommandLinesEnvironmentsOrFiles() async throws {
        try await EmbeddedSupervisor.with(workers: 2) { embedded in
            let seeds = embedded.supervisor.identities.map(\.hexSeed)
            #expect(!seeds.isEmpty)
            let pids = try await embedded.runningPIDs()
            for pid in pids {
                for part in ["cmdline", "environ"] {
                    let bytes = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/\(part)"))
                    let text = String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).lowercased()
                    if part == "cmdline" { #expect(text.contains(" worker ") && text.contains(" --supervisor-pid "), "not a worker's command line: \(text)") }
                    for seed in seeds { #expect(!text.contains(seed), "worker \(pid)'s \(part) holds a secret key") }
                }
            }
            let directory = embedded.supervisor.runtimeDirectory.path
            var info = stat()
            #expect(stat(directory, &info) == 0)
            #expect(info.st_mode & 0o777 == 0o700)
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                guard let bytes = FileManager.default.contents(atPath: "\(directory)/\(name)") else { continue }
                let text = String(decoding: bytes, as: UTF8.self).lowercased()
                for seed in seeds { #expect(!text.contains(seed), "\(name) in the runtime directory holds a secret key") }
            }
        }
    }

    @Test func echo_ofTwoMegabytes_throughTheSupervisor_arrivesIntact() async throws {
        let keys = try SupervisorFixture.keys(on: [0], workers: 1)
        let listener = try await PeerListener(keys: keys)
        // A small window on both sides, so the bytes cross many CREDITs each way.
        let client = SupervisorClient.Configuration(requestTimeout: .seconds(30), receiveWindow: 65_536, maxDataFrame: 16_384)
        try await EmbeddedSupervisor.with(workers: 1, client: client, { $0.defaultWindow = 65_536 }) { embedded in
            let payload = (0..<(2 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 11) }
            let stream = try await embedded.client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(keys[0].id52))
            // Read while writing: the echo peer only goes on while we take its echo.
            let reader = Task { try await stream.readToEnd(limit: 4 << 20) }
            try await within(.seconds(60), "writing 2 MiB") {
                try await stream.write(payload)
                try await stream.finish()
            }
            let echoed = try await within(.seconds(60), "reading the echo") { try await reader.value }
            #expect(echoed.readableBytes == payload.count)
            #expect(Array(echoed.readableBytesView) == payload, "the echo differs from what was sent")
        }
        await listener.stop()
    }

    @Test func streams_landOnTheShardTheMapNames_killingAWorkerAbortsOnlyItsStream() async throws {
        let workers = 3
        let keys = try SupervisorFixture.keys(on: [0, 1, 2], workers: workers)
        let listener = try await PeerListener(keys: keys)
        try await EmbeddedSupervisor.with(workers: workers) { embedded in
            let supervisor = embedded.supervisor
            let client = embedded.client
            for (shard, key) in keys.enumerated() {
                #expect(supervisor.shard(for: key.id52) == shard)
            }
            var streams: [SupervisedStream] = []
            for (shard, key) in keys.enumerated() {
                let stream = try await client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(key.id52))
                #expect(try await stream.echoLine("hello \(shard)\n") == "hello \(shard)\n")
                streams.append(stream)
            }

            // Kill each shard's worker in turn: exactly the stream the map puts there aborts.
            for victim in 0..<workers {
                let pids = try await embedded.runningPIDs()
                kill(pids[victim], SIGKILL)
                let stream = streams[victim]
                let failure = try await within(SupervisorFixture.deadline, "the stream on shard \(victim) to abort") {
                    await outcome { _ = try await stream.read() }
                }
                #expect(failure.code == "worker_crashed", "\(failure)")
                #expect(failure.message.contains("shard \(victim)"), "\(failure)")
                #expect(failure.message.contains("SIGKILL"), "\(failure)")
                for other in 0..<workers where other != victim {
                    let survivor = streams[other]
                    let echoed = try await within(SupervisorFixture.deadline, "an echo on shard \(other)") {
                        try await survivor.echoLine("still \(other) after \(victim)\n")
                    }
                    #expect(echoed == "still \(other) after \(victim)\n", "shard \(other)'s stream was disturbed by killing shard \(victim)")
                }
                let replacement = try await embedded.replacementPID(shard: victim, replacing: pids[victim])
                #expect(replacement != pids[victim])
                streams[victim] = try await client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(keys[victim].id52))
                #expect(try await streams[victim].echoLine("back \(victim)\n") == "back \(victim)\n")
            }

            let status = try await supervisor.status()
            #expect(status.workers.map(\.restarts) == [1, 1, 1])
            for stream in streams {
                try await stream.finish()
                #expect(try await stream.readToEnd(limit: 1024).readableBytes == 0)
            }
        }
        await listener.stop()
    }

    @Test func shardMap_isTheSameAfterARestart_andEachPeerIsServedByItsShard() async throws {
        let workers = 3
        let keys = try SupervisorFixture.keys(on: [2, 0, 1], workers: workers)
        let listener = try await PeerListener(keys: keys)
        let probe = keys.map(\.id52) + (0..<200).map { _ in SecretKey.generate().id52 }
        // The supervisor restarts in the same runtime directory, as a service restart does.
        let directory = try ScratchDirectory()
        defer { directory.remove() }
        var maps: [[Int]] = []
        for run in 0..<2 {
            let map = try await EmbeddedSupervisor.with(workers: workers, directory: directory) { embedded in
                let supervisor = embedded.supervisor
                // Connections are made on demand, per worker: one stream to each peer in turn must
                // raise exactly its shard's worker's connection count (from the heartbeats).
                var expected = Array(repeating: 0, count: workers)
                var streams: [SupervisedStream] = []
                for key in keys {
                    let stream = try await embedded.client.getStream(ProtocolHeader(.generic("echo")), to: listener.peer(key.id52))
                    #expect(try await stream.echoLine("run \(run)\n") == "run \(run)\n")
                    streams.append(stream)
                    expected[supervisor.shard(for: key.id52)] += 1
                    let want = expected
                    try await SupervisorFixture.waitUntil("workers' connections to be \(want) in run \(run)") {
                        try await supervisor.status().workers.map(\.connections) == want
                    }
                }
                for stream in streams { await stream.reset(code: 0) }
                return probe.map(supervisor.shard(for:))
            }
            maps.append(map)
        }
        #expect(maps[0] == maps[1])
        #expect(maps[0] == probe.map(ShardMap(workerCount: workers).worker(for:)))
        #expect(Array(maps[0].prefix(3)) == [2, 0, 1])
        #expect(Set(maps[0]) == [0, 1, 2])
        await listener.stop()
    }
}
