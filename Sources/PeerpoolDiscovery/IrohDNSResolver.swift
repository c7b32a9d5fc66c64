import NIOCore
import NIOPosix
import PeerpoolIdentity

/// What DNS said about one peer: its iroh record (empty when there was none) and for how long
/// that answer holds.
public struct DNSLookupResult: Sendable, Equatable {
    /// `_iroh.<z32>.<origin>`, the name asked for.
    public var name: String
    public var record: IrohEndpointRecord
    /// How long the answer may be reused: the smallest TTL of its TXT records (capped), or the
    /// negative TTL when there was no record.
    public var ttl: Duration
    /// `true` when the name server answered NXDOMAIN.
    public var nameDoesNotExist: Bool

    /// One line for error messages: what the name server answered.
    public var summary: String {
        if nameDoesNotExist { return "TXT \(name): no such name (NXDOMAIN)" }
        return "TXT \(name): \(record)"
    }
}

/// Finds a peer's addresses and relay the way iroh does: a DNS TXT query for
/// `_iroh.<z-base-32 key>.<origin>` over UDP to the configured name servers, answers cached by
/// their TTL (bounded by ``DNSDiscoveryConfiguration/cacheCapacity``). Concurrent lookups of one
/// peer share a single query.
///
/// Uses plain DNS over UDP: the record is public and unsigned in DNS; what is signed is the pkarr
/// packet behind it (see ``PkarrSignedPacket``), which DNS does not carry.
public actor IrohDNSResolver {
    public let configuration: DNSDiscoveryConfiguration
    private let nameServers: [SocketAddress]
    private let group: any EventLoopGroup
    private let now: @Sendable () -> ContinuousClock.Instant
    private var cache: RecordCache<DNSLookupResult>
    private var inFlight: [ID52: Task<DNSLookupResult, any Error>] = [:]

    /// `now` is the clock TTLs are measured on; tests pass a manual one.
    public init(
        configuration: DNSDiscoveryConfiguration = DNSDiscoveryConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }
    ) throws(DiscoveryError) {
        _ = try DNSMessage.encodeName(configuration.origin)
        self.configuration = configuration
        self.nameServers = try configuration.resolvedNameServers()
        self.group = group
        self.now = now
        self.cache = RecordCache(capacity: configuration.cacheCapacity)
    }

    /// The peer's record, from the cache while its TTL lasts, else from DNS. An empty record
    /// (NXDOMAIN or no TXT values) is a result, not an error. Throws ``DiscoveryError`` with
    /// `dns_timeout`, `dns_server_failure`, `dns_truncated`, `dns_malformed` or `bad_iroh_record`.
    public func lookup(_ peer: ID52) async throws -> DNSLookupResult {
        if let cached = cache.value(for: peer, now: now()) { return cached }
        if let running = inFlight[peer] { return try await running.value }
        let task = Task { try await self.query(peer) }
        inFlight[peer] = task
        defer { inFlight[peer] = nil }
        let result = try await task.value
        cache.store(result, for: peer, ttl: result.ttl, now: now())
        return result
    }

    /// Forgets every cached answer.
    public func clearCache() { cache.removeAll() }

    public var cachedCount: Int { cache.count }


    private func query(_ peer: ID52) async throws -> DNSLookupResult {
        let name = IrohEndpointRecord.name(of: peer, origin: configuration.origin)
        let query = DNSMessage.txtQuery(id: UInt16.random(in: 0...UInt16.max), name: name)
        var lastError: (any Error)?
        for server in nameServers {
            do {
                guard let answer = try await Self.exchange(query, with: server, group: group, timeout: configuration.queryTimeout,
                                                           maximumSize: configuration.maximumResponseSize) else {
                    lastError = DiscoveryError(.dnsTimeout, "no answer from name server \(server) for TXT \(name) within \(configuration.queryTimeout)")
                    continue
                }
                return try interpret(answer, name: name, peer: peer, server: server)
            } catch let error as DiscoveryError where error.code == .dnsServerFailure {
                lastError = error
            }
        }
        throw lastError ?? DiscoveryError(.noNameServer, "no name server to ask for TXT \(name)")
    }

    private func interpret(_ answer: DNSMessage, name: String, peer: ID52, server: SocketAddress) throws -> DNSLookupResult {
        guard !answer.isTruncated else {
            throw DiscoveryError(.dnsTruncated, "name server \(server) truncated its answer for TXT \(name); the record is too large for UDP")
        }
        switch answer.rcode {
        case 0:
            let txt = answer.answers.filter { $0.type == DNSMessage.typeTXT }
            var values: [String] = []
            for record in txt { values.append(try record.txtValue()) }
            let record = try IrohEndpointRecord(peer: peer, txtValues: values)
            let ttl = txt.isEmpty || record.isEmpty
                ? configuration.negativeTTL
                : min(.seconds(Int64(txt.map(\.ttl).min() ?? 0)), configuration.maximumTTL)
            return DNSLookupResult(name: name, record: record, ttl: ttl, nameDoesNotExist: false)
        case 3:
            return DNSLookupResult(name: name, record: IrohEndpointRecord(peer: peer), ttl: configuration.negativeTTL, nameDoesNotExist: true)
        default:
            throw DiscoveryError(.dnsServerFailure, "name server \(server) answered TXT \(name) with rcode \(answer.rcode) (2 SERVFAIL, 5 REFUSED)")
        }
    }

    /// Sends `query` to `server` from a fresh ephemeral UDP port and waits at most `timeout` for
    /// a reply from that server with the query's id and question. Others are dropped (at most 64
    /// datagrams are looked at). `nil` on timeout.
    static func exchange(_ query: DNSMessage, with server: SocketAddress, group: any EventLoopGroup,
                         timeout: Duration, maximumSize: Int) async throws -> DNSMessage? {
        let bytes = try query.encoded(ednsUDPSize: 1232)
        let bindHost: String
        if case .v6 = server { bindHost = "::" } else { bindHost = "0.0.0.0" }
        let channel = try await DatagramBootstrap(group: group).bind(host: bindHost, port: 0) { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<AddressedEnvelope<ByteBuffer>, AddressedEnvelope<ByteBuffer>>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(AddressedEnvelope(remoteAddress: server, data: ByteBuffer(bytes: bytes)))
            return try await withThrowingTaskGroup(of: DNSMessage?.self) { group in
                group.addTask {
                    var looked = 0
                    for try await envelope in inbound {
                        looked += 1
                        if looked > 64 { return nil }
                        guard envelope.remoteAddress == server, envelope.data.readableBytes <= maximumSize,
                              let message = try? DNSMessage(decoding: envelope.data.readableBytesView),
                              message.id == query.id, message.isResponse,
                              message.questions.map({ $0.name.lowercased() }) == query.questions.map({ $0.name.lowercased() })
                        else { continue }
                        return message
                    }
                    return nil
                }
                group.addTask {
                    try await Task.sleep(for: timeout)
                    return nil
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                return first
            }
        }
    }
}
