import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity

/// iroh's DNS discovery as an ``AddressResolver``: the `addr=` values of
/// `TXT _iroh.<z-base-32 key>.<origin>`, cached by TTL in the wrapped ``IrohDNSResolver``.
///
/// A peer with no direct address fails with `no_address` naming what DNS said (no such name,
/// no values, or only a relay, which peerpool cannot use yet); a failed lookup with
/// `discovery_failed`. Put it after an ``AddressBook`` in a ``ChainedResolver``.
public struct DNSAddressResolver: AddressResolver {
    public let resolver: IrohDNSResolver

    public init(_ resolver: IrohDNSResolver) {
        self.resolver = resolver
    }

    public func addresses(of peer: ID52) async throws -> [SocketAddress] {
        let result: DNSLookupResult
        do {
            result = try await resolver.lookup(peer)
        } catch let error as DiscoveryError {
            throw PoolError(.discoveryFailed, peer: peer, "looking up \(peer) in DNS failed: \(error)")
        }
        guard result.record.addresses.isEmpty else { return result.record.addresses }
        let hint = result.record.relayURLs.isEmpty
            ? "give an address as \(peer)@host:port or add it to the address book"
            : "the peer is reachable only through its relay, which peerpool does not support yet"
        throw PoolError(.noAddress, peer: peer, "no address known for \(peer): DNS \(result.summary); \(hint)")
    }
}
