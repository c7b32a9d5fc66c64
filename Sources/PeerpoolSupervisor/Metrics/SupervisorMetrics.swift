import PeerpoolWire
import Prometheus
import Synchronization

/// The supervisor's Prometheus metrics, every one labelled by shard, so one scrape shows all
/// workers side by side (`peerpool serve --metrics`).
///
/// Counters (opens, failures by code, latency, bytes) are counted by the supervisor as requests
/// and data pass through it: it sees every one, so no worker has to report them, and a worker's
/// crash cannot lose them. Gauges (connections, streams, worker state) are refreshed from the
/// same snapshot `peerpool status` shows, at scrape time.
///
/// Label values are bounded: shards are `0 ..< workers`, and failure codes beyond
/// ``maximumCodes`` distinct ones are counted as `other` (codes travel from workers, and a
/// bounded registry must not depend on them being few).
public final class SupervisorMetrics: Sendable {
    public static let maximumCodes = 64
    /// Open latency buckets: 250 µs to 10 s.
    static let latencyBuckets: [Duration] = [
        .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
        .seconds(2.5), .seconds(5), .seconds(10),
    ]

    public let registry: PrometheusCollectorRegistry
    private let shards: [ShardMetrics]
    private let clients: Gauge
    private let clientsOverrun: Counter
    /// The overrun count last seen in a status, so the counter grows by the difference.
    private let overrunSeen = Mutex(0)
    private let uptime: Gauge

    public init(workers: Int, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        shards = (0..<workers).map { ShardMetrics(shard: $0, registry: registry) }
        clients = registry.makeGauge(descriptor: .peerpool("clients", unit: "", help: "Clients connected to the frontend."))
        clientsOverrun = registry.makeCounter(descriptor: .peerpool(
            "clients_overrun", unit: "total", help: "Clients dropped for not reading their replies, since start."))
        uptime = registry.makeGauge(descriptor: .peerpool("uptime", unit: "seconds", help: "Seconds since the supervisor started."))
    }

    /// An OPEN was routed to `shard`.
    public func opening(shard: Int) {
        guard shards.indices.contains(shard) else { return }
        shards[shard].opens.increment()
    }

    /// An OPEN to `shard` was answered OPENED `latency` after it arrived.
    public func opened(shard: Int, latency: Duration) {
        guard shards.indices.contains(shard) else { return }
        shards[shard].openLatency.record(latency)
    }

    /// An OPEN to `shard` was answered ERROR with `code`.
    public func failed(shard: Int, code: String) {
        guard shards.indices.contains(shard) else { return }
        shards[shard].failures(code).increment()
    }

    /// `count` bytes of DATA passed through the supervisor for a stream of `shard`.
    public func data(shard: Int, toPeer: Bool, count: Int) {
        guard shards.indices.contains(shard), count > 0 else { return }
        (toPeer ? shards[shard].bytesToPeer : shards[shard].bytesFromPeer).increment(by: Int64(count))
    }

    /// Counts one of the routing's metric events.
    func record(_ metric: SupervisorRoutingState.Metric) {
        switch metric {
        case .opening(let shard): opening(shard: shard)
        case .opened(let shard, let latency): opened(shard: shard, latency: latency)
        case .failed(let shard, let code): failed(shard: shard, code: code)
        case .data(let shard, let toPeer, let bytes): data(shard: shard, toPeer: toPeer, count: bytes)
        }
    }

    /// Sets the gauges from a status snapshot.
    public func update(from status: SupervisorStatus) {
        clients.set(Double(status.clients))
        let overrun = status.clientsOverrun ?? 0
        let added = overrunSeen.withLock { seen in
            defer { seen = max(seen, overrun) }
            return max(0, overrun - seen)
        }
        if added > 0 { clientsOverrun.increment(by: Int64(added)) }
        uptime.set(status.uptimeSeconds)
        for worker in status.workers where shards.indices.contains(worker.index) {
            shards[worker.index].update(from: worker)
        }
    }

    /// The exposition text of everything above.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// One shard's metrics, created once so that scrapes and hot paths only look them up.
private final class ShardMetrics: Sendable {
    static let states = ["starting", "running", "backoff", "stopping", "stopped"]

    let opens: Counter
    let openLatency: DurationHistogram
    let bytesToPeer: Counter
    let bytesFromPeer: Counter
    let connections: Gauge
    let streams: Gauge
    let requests: Gauge
    let restarts: Counter
    /// The restart count last seen in a status, so the counter grows by the difference.
    private let restartsSeen = Mutex(0)
    let state: [String: Gauge]
    private let registry: PrometheusCollectorRegistry
    private let label: (String, String)
    private let failureCounters = Mutex<[String: Counter]>([:])

    init(shard: Int, registry: PrometheusCollectorRegistry) {
        self.registry = registry
        let label = ("shard", "\(shard)")
        self.label = label
        opens = registry.makeCounter(descriptor: .peerpool("opens", unit: "total", help: "OPEN requests routed to the shard."), labels: [label])
        openLatency = registry.makeDurationHistogram(
            descriptor: .peerpool("open_duration", unit: "seconds", help: "From OPEN arriving to OPENED leaving the supervisor."),
            labels: [label], buckets: SupervisorMetrics.latencyBuckets)
        let bytes = MetricNameDescriptor.peerpool("data", unit: "bytes_total", help: "Stream bytes through the supervisor.")
        bytesToPeer = registry.makeCounter(descriptor: bytes, labels: [label, ("direction", "to_peer")])
        bytesFromPeer = registry.makeCounter(descriptor: bytes, labels: [label, ("direction", "from_peer")])
        connections = registry.makeGauge(descriptor: .peerpool("connections", unit: "", help: "QUIC connections the worker holds."), labels: [label])
        streams = registry.makeGauge(descriptor: .peerpool("streams", unit: "", help: "Streams open on the worker."), labels: [label])
        requests = registry.makeGauge(descriptor: .peerpool("requests", unit: "", help: "Requests in flight on the worker."), labels: [label])
        restarts = registry.makeCounter(descriptor: .peerpool("worker_restarts", unit: "total", help: "Times the shard's worker was restarted."), labels: [label])
        let stateDescriptor = MetricNameDescriptor.peerpool("worker_state", unit: "", help: "1 for the worker's current state (backoff: restarting too often, waiting).")
        state = Dictionary(uniqueKeysWithValues: Self.states.map {
            ($0, registry.makeGauge(descriptor: stateDescriptor, labels: [label, ("state", $0)]))
        })
    }

    func failures(_ code: String) -> Counter {
        failureCounters.withLock { counters in
            let key = counters[code] != nil || counters.count < SupervisorMetrics.maximumCodes ? code : "other"
            if let counter = counters[key] { return counter }
            let counter = registry.makeCounter(
                descriptor: .peerpool("open_failures", unit: "total", help: "OPEN requests answered ERROR, by code."),
                labels: [label, ("code", key)])
            counters[key] = counter
            return counter
        }
    }

    func update(from worker: SupervisorStatus.WorkerStatus) {
        connections.set(Double(worker.connections))
        streams.set(Double(worker.streams))
        requests.set(Double(worker.requests))
        let grown = restartsSeen.withLock { seen in
            defer { seen = max(seen, worker.restarts) }
            return max(0, worker.restarts - seen)
        }
        if grown > 0 { restarts.increment(by: Int64(grown)) }
        for (name, gauge) in state { gauge.set(name == worker.state ? 1.0 : 0.0) }
    }
}

extension MetricNameDescriptor {
    /// `peerpool_<name>_<unit>` with its help text.
    static func peerpool(_ name: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "peerpool", metricName: name, unitName: unit, helpText: help)
    }
}
