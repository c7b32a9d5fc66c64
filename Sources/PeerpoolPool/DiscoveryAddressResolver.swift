import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity

/// iroh's discovery as an ``AddressResolver``: the `addr=` and `relay=` values of a peer's
/// record, from DNS (``DNSAddressResolver``, TXT `_iroh.<z-base-32 key>.<origin>`) or from the
/// signed packet a pkarr relay holds (``PkarrAddressResolver``), cached by TTL in the source.
///
/// `addresses(of:)` fails with `no_address` naming what the source said when there is no direct
/// address; `route(to:)` also returns relay URLs. A failed lookup (a pkarr packet not signed by
/// the peer's key included) is `discovery_failed`. Put it after an ``AddressBook`` in a
/// ``ChainedResolver``.
public struct DiscoveryAddressResolver<Source: IrohRecordSource>: AddressResolver {
    public let resolver: Source

    public init(_ resolver: Source) {
        self.resolver = resolver
    }

    public func addresses(of peer: ID52) async throws -> [SocketAddress] {
        let (record, summary) = try await lookup(peer)
        guard record.addresses.isEmpty else { return record.addresses }
        let hint = record.relayURLs.isEmpty
            ? "give an address as \(peer)@host:port or add it to the address book"
            : "the peer is reachable only through its relay"
        throw PoolError(.noAddress, peer: peer, "no address known for \(peer): \(resolver.sourceName) \(summary); \(hint)")
    }

    public func route(to peer: ID52) async throws -> PeerRoute {
        let (record, _) = try await lookup(peer)
        return PeerRoute(addresses: record.addresses, relayURLs: record.relayURLs)
    }

    private func lookup(_ peer: ID52) async throws -> (record: IrohEndpointRecord, summary: String) {
        do {
            return try await resolver.lookupRecord(peer)
        } catch let error as DiscoveryError {
            throw PoolError(.discoveryFailed, peer: peer, "looking up \(peer) in \(resolver.sourceName) failed: \(error)")
        }
    }
}

public typealias DNSAddressResolver = DiscoveryAddressResolver<IrohDNSResolver>
public typealias PkarrAddressResolver = DiscoveryAddressResolver<PkarrResolver>
