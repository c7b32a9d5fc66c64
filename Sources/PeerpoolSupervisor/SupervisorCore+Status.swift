import Foundation
import PeerpoolWire

#if canImport(Glibc)
import Glibc
#endif

extension SupervisorCore {
    /// The STATUS_REPLY figures. A worker's connections, streams and requests are from its
    /// latest heartbeat; the rest is the supervisor's own bookkeeping.
    func status() -> SupervisorStatus {
        let now = ContinuousClock.now
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        return SupervisorStatus(
            version: Int(WireVersion.current), pid: getpid(), uptimeSeconds: seconds(now - startedAt),
            clients: clients.count, streams: routes.count, requests: opens.count,
            workers: shards.map { shard in
                SupervisorStatus.WorkerStatus(
                    index: shard.index, pid: shard.process?.pid, state: shard.state.name,
                    uptimeSeconds: shard.process == nil ? nil : shard.spawnedAt.map { seconds(now - $0) },
                    restarts: shard.restarts, connections: shard.heartbeat.connections,
                    streams: shard.heartbeat.streams, requests: shard.heartbeat.requests
                )
            },
            clientsOverrun: overrunCount
        )
    }
}
