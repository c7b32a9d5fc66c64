import PeerpoolIdentity

/// What a pkarr relay said about one peer: its verified iroh record (empty when the relay has
/// no packet) and for how long that answer holds.
public struct PkarrLookupResult: Sendable, Equatable {
    /// The URL asked, `<relay>/<z32>`.
    public var url: String
    public var record: IrohEndpointRecord
    /// The smallest TTL of the record's TXT values (capped), or the negative TTL when the relay
    /// had nothing.
    public var ttl: Duration
    /// `true` when the relay answered 404.
    public var notFound: Bool

    /// One line for error messages: what the relay answered.
    public var summary: String {
        notFound ? "GET \(url): no packet (404)" : "GET \(url): \(record)"
    }
}

/// Finds a peer's addresses and relay by asking a pkarr relay for its signed packet (`GET
/// <relay>/<z32>`), as iroh's `PkarrResolver` does. Unlike DNS, every answer is verified: the
/// packet must be signed by the key the ID52 names, so a relay (or anyone between) cannot point
/// us elsewhere. Answers are cached by TTL; concurrent lookups of one peer share one request.
public actor PkarrResolver {
    public struct Configuration: Sendable {
        /// Answers kept at most. Default: 4096.
        public var cacheCapacity = 4096
        /// How long "no packet" is remembered. Default: 30 s (iroh's record TTL).
        public var negativeTTL: Duration = .seconds(30)
        /// A record's TTL is capped at this. Default: 1 hour.
        public var maximumTTL: Duration = .seconds(3600)
        public init() {}
    }

    public nonisolated let relay: PkarrRelayClient
    public nonisolated let configuration: Configuration
    private let now: @Sendable () -> ContinuousClock.Instant
    private var cache: RecordCache<PkarrLookupResult>
    private var inFlight: [ID52: Task<PkarrLookupResult, any Error>] = [:]

    /// `now` is the clock TTLs are measured on; tests pass a manual one.
    public init(
        relay: PkarrRelayClient, configuration: Configuration = Configuration(),
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) {
        self.relay = relay
        self.configuration = configuration
        self.now = now
        self.cache = RecordCache(capacity: configuration.cacheCapacity)
    }

    /// The peer's record, from the cache while its TTL lasts, else from the relay. Throws
    /// ``DiscoveryError`` with `pkarr_relay_failed`, `pkarr_relay_refused`, `pkarr_malformed`,
    /// `pkarr_bad_signature` (a packet not signed by the peer's key) or `bad_iroh_record`.
    public func lookup(_ peer: ID52) async throws -> PkarrLookupResult {
        if let cached = cache.value(for: peer, now: now()) { return cached }
        if let running = inFlight[peer] { return try await running.value }
        let task = Task { try await self.fetch(peer) }
        inFlight[peer] = task
        defer { inFlight[peer] = nil }
        let result = try await task.value
        cache.store(result, for: peer, ttl: result.ttl, now: now())
        return result
    }

    public var cachedCount: Int { cache.count }

    private func fetch(_ peer: ID52) async throws -> PkarrLookupResult {
        let url = relay.url(of: peer)
        guard let packet = try await relay.get(peer) else {
            return PkarrLookupResult(url: url, record: IrohEndpointRecord(peer: peer), ttl: configuration.negativeTTL, notFound: true)
        }
        let (record, ttl) = try packet.irohRecord()
        let holds = record.isEmpty ? configuration.negativeTTL : min(.seconds(Int64(ttl)), configuration.maximumTTL)
        return PkarrLookupResult(url: url, record: record, ttl: holds, notFound: false)
    }
}
