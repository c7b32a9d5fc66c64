import NIOCore
import PeerpoolIdentity

/// Asks resolvers in order and returns the first non-empty answer: typically an ``AddressBook``
/// (what the operator wrote down wins), then ``DNSAddressResolver``. An address given with the
/// request (`ID52@host:port`) is used before any resolver is asked.
///
/// A resolver that throws `no_address` counts as empty (its message is kept: when every
/// resolver comes back empty, the last such error is thrown, so the caller learns what DNS
/// said). Any other error stops the chain and is thrown.
public struct ChainedResolver: AddressResolver {
    public let resolvers: [any AddressResolver]

    public init(_ resolvers: [any AddressResolver]) {
        self.resolvers = resolvers
    }

    public func addresses(of peer: ID52) async throws -> [SocketAddress] {
        try await first(empty: [], isEmpty: \.isEmpty) { try await $0.addresses(of: peer) }
    }

    /// The first resolver's route with an address or a relay: a relay-only answer ends the
    /// chain too, since a later resolver is no more likely to know a direct address.
    public func route(to peer: ID52) async throws -> PeerRoute {
        try await first(empty: PeerRoute(), isEmpty: \.isEmpty) { try await $0.route(to: peer) }
    }

    private func first<Answer>(
        empty: Answer, isEmpty: (Answer) -> Bool, _ ask: (any AddressResolver) async throws -> Answer
    ) async throws -> Answer {
        var emptyAnswer: PoolError?
        for resolver in resolvers {
            do {
                let found = try await ask(resolver)
                if !isEmpty(found) { return found }
            } catch let error as PoolError where error.code == .noAddress {
                emptyAnswer = error
            }
        }
        if let emptyAnswer { throw emptyAnswer }
        return empty
    }
}
