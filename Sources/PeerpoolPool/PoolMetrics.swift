import Metrics

/// The pool's metrics, created once (swift-metrics' guidance): no peer ID is ever a dimension.
struct PoolMetrics: Sendable {
    let connectionsOpen = Gauge(label: "peerpool.connections.open")
    let connects = Counter(label: "peerpool.connects")
    let connectFailures = Counter(label: "peerpool.connect.failures")
    let streamsOpened = Counter(label: "peerpool.streams.opened")
    let waitersFailed = Counter(label: "peerpool.waiters.failed")
    let pings = Counter(label: "peerpool.pings", dimensions: [("result", "ok")])
    let pingFailures = Counter(label: "peerpool.pings", dimensions: [("result", "failed")])
    let getStreamDuration = Timer(label: "peerpool.getstream.duration")
}
