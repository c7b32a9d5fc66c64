import NIOCore
import PeerpoolIdentity

/// A path to peers named by ID52 rather than by a UDP address: an iroh relay server.
///
/// Attach one to an endpoint with `QUICEndpoint.attachRelay(_:)`; the endpoint then dials
/// (`connect(to:via: .relay)`) and answers peers through it exactly as through its UDP socket.
/// QUIC itself sees an ordinary path: each relayed peer gets a stand-in IPv6 address (see
/// `QUICPath.relay`). The relay only carries datagrams; every connection still proves both
/// keys in its TLS handshake, so a relay can drop, delay or misdirect packets but cannot
/// impersonate a peer.
public protocol QUICRelayPath: AnyObject, Sendable {
    /// Sends `datagrams` to `peer`: one datagram when `segmentSize` is nil, else a batch of
    /// `segmentSize`-byte datagrams (the last one may be shorter), as UDP GSO would; at most
    /// 65,000 bytes either way, and never more than `QUICConfiguration.maxUDPPayloadSize` per
    /// datagram. `ecn` is the ECN codepoint (0: not ECN-capable). Called on the endpoint's event
    /// loop; must not block, and drops what it cannot carry, like UDP.
    func send(_ datagrams: ByteBuffer, segmentSize: Int?, ecn: UInt8, to peer: ID52)

    /// Installs the function that takes datagrams from peers: the relay-claimed source, the
    /// data, and the segment size when the data is a batch (nil for one datagram). Replaces
    /// any earlier receiver. The receiver may be called on any thread (an iroh relay client
    /// calls it on its own event loop); the endpoint hops to its own loop.
    func setReceiver(_ receiver: @escaping @Sendable (ID52, ByteBuffer, Int?) -> Void)
}

/// Which way a connection reaches its peer. Fixed for the connection's life: peerpool does not
/// migrate a connection between a relay and UDP.
public struct QUICPath: Sendable, Hashable, CustomStringConvertible {
    enum Kind: Sendable, Hashable {
        case udp(SocketAddress)
        case homeRelay
    }

    let kind: Kind

    /// Straight over the endpoint's UDP socket to `address`.
    public static func udp(_ address: SocketAddress) -> QUICPath { QUICPath(kind: .udp(address)) }

    /// Through the endpoint's home relay (`QUICEndpoint.attachRelay(_:)`), to the peer named by
    /// its ID52. The connection's `remoteAddress` is then the peer's stand-in address: an IPv6
    /// address in `fd70:6565:7270::/48` that the endpoint hands out and that never leaves it.
    public static let relay = QUICPath(kind: .homeRelay)

    /// The peer's UDP address, or nil on a relay path.
    public var udpAddress: SocketAddress? {
        if case .udp(let address) = kind { return address }
        return nil
    }

    /// Whether this path goes through a relay.
    public var isRelay: Bool { kind == .homeRelay }

    public var description: String {
        switch kind {
        case .udp(let address): return "udp \(UDPAddressing.describe(address))"
        case .homeRelay: return "relay"
        }
    }
}

/// How one relayed connection sends: through `path`, to `peer` (the ID52 the relay knows it by).
struct RelayRoute: Sendable {
    let path: any QUICRelayPath
    let peer: ID52
}
