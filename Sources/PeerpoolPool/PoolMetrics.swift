import Metrics

/// The pool's metrics, created once (swift-metrics' guidance): no peer ID is ever a dimension.
struct PoolMetrics: Sendable {
    let connectionsOpen: Gauge
    let connects: Counter
    let connectFailures: Counter
    let streamsOpened: Counter
    let waitersFailed: Counter
    let pings: Counter
    let pingFailures: Counter
    let getStreamDuration: Timer

    init(factory: any MetricsFactory) {
        connectionsOpen = Gauge(label: "peerpool.connections.open", factory: factory)
        connects = Counter(label: "peerpool.connects", factory: factory)
        connectFailures = Counter(label: "peerpool.connect.failures", factory: factory)
        streamsOpened = Counter(label: "peerpool.streams.opened", factory: factory)
        waitersFailed = Counter(label: "peerpool.waiters.failed", factory: factory)
        pings = Counter(label: "peerpool.pings", dimensions: [("result", "ok")], factory: factory)
        pingFailures = Counter(label: "peerpool.pings", dimensions: [("result", "failed")], factory: factory)
        getStreamDuration = Timer(label: "peerpool.getstream.duration", factory: factory)
    }
}
