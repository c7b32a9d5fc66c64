import PeerpoolWire

extension SupervisorRoutingState {
    /// What the driver must do, in order. Sends to a client that turn out to fail (the client is
    /// gone or not reading) are the driver's to handle: it calls `clientDisconnected`.
    enum Action {
        /// A message body: none, bytes made here, or a frame received elsewhere and forwarded
        /// without a copy.
        enum Body {
            case none
            case bytes([UInt8])
            case frame(ZMQFrame)

            init(_ frame: ZMQFrame?) {
                self = frame.map { .frame($0) } ?? .none
            }
        }

        /// Why a worker is killed (SIGKILL to its process group).
        enum KillReason: Equatable {
            /// No heartbeat for `hangTimeout`.
            case hung
            /// No HELLO within `startTimeout`.
            case startTimeout
            /// Still running `stopTimeout` after it was told to stop.
            case stopTimeout
        }

        case sendToClient(ClientKey, WireHeader, Body)
        /// To the shard's current worker; dropped when it has none (its exit fails what it held).
        case sendToWorker(shard: Int, WireHeader, Body)
        /// Answer a STATUS request (the figures are the driver's: pids, uptime, clients).
        case replyStatus(ClientKey, requestID: UInt64)
        /// Start the shard's worker as `generation`; report `workerStarted` or `workerExited`.
        case spawnWorker(shard: Int, generation: Int)
        case killWorker(shard: Int, KillReason)
        /// Ask the worker to stop (SHUTDOWN; SIGTERM if it cannot be reached).
        case stopWorker(shard: Int)
        /// Call `tick` at (or soon after) this instant.
        case scheduleTick(at: Instant)
        /// Draining is over: every worker has stopped.
        case allWorkersStopped
    }
}

extension [SupervisorRoutingState.Action] {
    mutating func sendError(_ client: SupervisorRoutingState.ClientKey, id: UInt64, _ error: WireError) {
        append(.sendToClient(client, WireHeader(.error, id: id), .bytes(error.jsonBody)))
    }

    mutating func sendAborted(_ client: SupervisorRoutingState.ClientKey, stream: UInt64, _ error: WireError) {
        append(.sendToClient(client, WireHeader(.aborted, id: stream), .bytes(error.jsonBody)))
    }
}
