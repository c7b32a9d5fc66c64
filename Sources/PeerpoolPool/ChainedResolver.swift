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
        var emptyAnswer: PoolError?
        for resolver in resolvers {
            do {
                let found = try await resolver.addresses(of: peer)
                if !found.isEmpty { return found }
            } catch let error as PoolError where error.code == .noAddress {
                emptyAnswer = error
            }
        }
        if let emptyAnswer { throw emptyAnswer }
        return []
    }
}
