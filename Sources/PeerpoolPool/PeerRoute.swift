import NIOCore

/// Everything known about reaching one peer: direct UDP addresses, best first, and the iroh relay
/// servers it keeps a connection to (its home relay), from which a relayed path can be made.
public struct PeerRoute: Sendable, Equatable {
    public var addresses: [SocketAddress]
    public var relayURLs: [String]

    public init(addresses: [SocketAddress] = [], relayURLs: [String] = []) {
        self.addresses = addresses
        self.relayURLs = relayURLs
    }

    public var isEmpty: Bool { addresses.isEmpty && relayURLs.isEmpty }
}
