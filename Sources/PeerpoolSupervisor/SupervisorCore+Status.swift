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
            clients: clients.count, streams: routing.streams.count, requests: routing.opens.count,
            workers: routing.workers.map { worker in
                SupervisorStatus.WorkerStatus(
                    index: worker.index, pid: worker.pid, state: worker.state.name,
                    uptimeSeconds: worker.pid == nil ? nil : worker.spawnedAt.map { seconds(now - $0) },
                    restarts: worker.restarts, connections: worker.heartbeat.connections,
                    streams: worker.heartbeat.streams, requests: worker.heartbeat.requests
                )
            },
            clientsOverrun: overrunCount
        )
    }
}
