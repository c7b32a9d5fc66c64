import Foundation
import PeerpoolWire

/// One shard's worker process and what is routed to it. Owned by `SupervisorCore`, on its
/// reactor thread.
final class Shard {
    enum State: Equatable {
        /// Spawned, not yet said HELLO: requests queue (up to their timeout).
        case starting
        case running
        /// Restarting too often: requests fail fast with `worker_unavailable` until then.
        case backoff(until: ContinuousClock.Instant)
        case stopping
        case stopped

        var name: String {
            switch self {
            case .starting: "starting"
            case .running: "running"
            case .backoff: "backoff"
            case .stopping: "stopping"
            case .stopped: "stopped"
            }
        }
    }

    let index: Int
    var state: State = .stopped
    /// Owned: its pidfd is watched by the reactor; closed after the exit is handled.
    var process: SpawnedProcess?
    var generation = 0
    /// The current worker's ZeroMQ routing id, nil while it has none.
    var routingID: [UInt8]?
    var spawnedAt: ContinuousClock.Instant?
    var readyAt: ContinuousClock.Instant?
    var lastHeartbeat: ContinuousClock.Instant?
    /// Why we killed the current worker, if we did: reported instead of the bare signal.
    var killReason: (code: String, message: String)?
    /// Restarts within the intensity window (OTP's MaxR in MaxT).
    var recentRestarts: [ContinuousClock.Instant] = []
    var backoffLevel = 0
    var restarts = 0
    var heartbeat = HeartbeatBody()

    /// Internal ids of opens routed here (queued or sent).
    var opens: Set<UInt64> = []
    /// Opens waiting for the worker to say HELLO, in arrival order.
    var queued: [UInt64] = []
    var streams: Set<UInt64> = []

    init(index: Int) {
        self.index = index
    }

    func unavailableMessage(until: ContinuousClock.Instant) -> String {
        let seconds = max(0, Double((until - .now).components.attoseconds) / 1e18 + Double((until - .now).components.seconds))
        return "shard \(index)'s worker is restarting too often (\(recentRestarts.count) restarts recently); next attempt in \(String(format: "%.1f", seconds)) s"
    }
}
