import PeerpoolIdentity

/// Somewhere iroh endpoint records can be looked up: DNS (``IrohDNSResolver``) or a pkarr relay
/// (``PkarrResolver``). Lets the pool treat both the same way.
public protocol IrohRecordSource: Sendable {
    /// Names the source in messages, e.g. `DNS` or `pkarr relay https://…`.
    var sourceName: String { get }
    /// The peer's record (empty when the source has none) and one line saying what the source
    /// answered. Throws ``DiscoveryError``.
    func lookupRecord(_ peer: ID52) async throws -> (record: IrohEndpointRecord, summary: String)
}

extension IrohDNSResolver: IrohRecordSource {
    public nonisolated var sourceName: String { "DNS" }
    public func lookupRecord(_ peer: ID52) async throws -> (record: IrohEndpointRecord, summary: String) {
        let result = try await lookup(peer)
        return (result.record, result.summary)
    }
}

extension PkarrResolver: IrohRecordSource {
    public nonisolated var sourceName: String { "pkarr relay \(relay.relayURL)" }
    public func lookupRecord(_ peer: ID52) async throws -> (record: IrohEndpointRecord, summary: String) {
        let result = try await lookup(peer)
        return (result.record, result.summary)
    }
}
