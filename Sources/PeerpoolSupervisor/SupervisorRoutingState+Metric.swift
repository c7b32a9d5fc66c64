import PeerpoolWire

extension SupervisorRoutingState {
    /// What the routing counts for the operator's metrics (`SupervisorMetrics`), kept apart from
    /// the actions: the driver drains them after every call, so they never change what is sent.
    enum Metric: Equatable {
        /// An OPEN was accepted for `shard`.
        case opening(shard: Int)
        /// An OPEN was answered OPENED `latency` after it arrived.
        case opened(shard: Int, latency: Duration)
        /// An OPEN routed to `shard` was answered ERROR with `code`.
        case failed(shard: Int, code: String)
        /// DATA for a stream of `shard`, toward the peer (from a client) or from it.
        case data(shard: Int, toPeer: Bool, bytes: Int)
    }

    /// Events not yet drained: bounded, so a driver that never drains (a test) cannot grow it
    /// without end; what does not fit is dropped (metrics, never routing).
    static let maximumPendingMetrics = 10_000

    mutating func record(_ metric: Metric) {
        if pendingMetrics.count < Self.maximumPendingMetrics { pendingMetrics.append(metric) }
    }

    /// The events recorded since the last call.
    mutating func takeMetrics() -> [Metric] {
        defer { pendingMetrics.removeAll(keepingCapacity: true) }
        return pendingMetrics
    }

    /// Answers an open with `error` and counts the failure for its shard.
    mutating func failOpen(_ open: PendingOpen, _ error: WireError, _ actions: inout [Action]) {
        record(.failed(shard: open.shard, code: error.code.name))
        actions.sendError(open.client, id: open.requestID, WireError(error.code, error.message, id: open.requestID))
    }
}
