/// Tunables of an endpoint and of every connection it makes or accepts.
///
/// Defaults suit a server talking to many peers over real networks and still move bulk data at
/// full speed on loopback. Every limit bounds memory: nothing here can make a buffer grow
/// without bound.
public struct QUICConfiguration: Sendable {
    /// ALPN protocol offered and required on both sides. Default: fastn's `/fastn/entity/0.1`.
    /// A peer that offers anything else is refused during the handshake.
    public var alpn: String = "/fastn/entity/0.1"

    /// Offer X.509 certificates after raw public keys (RFC 7250), for peers that negotiate no
    /// certificate type: peerpool before raw public keys, aioquic, most TLS stacks. Raw public
    /// keys are always offered first and win whenever the peer supports them (iroh and fastn
    /// accept nothing else). Off: such peers fail the handshake, and no X.509 certificate is
    /// built per identity. Either way only the ed25519 key counts. Default: true.
    public var allowsX509Fallback: Bool = true

    /// Close a connection when nothing arrived for this long. The smaller of both sides' values
    /// applies. Default: 30 s, comfortably above the pool's 12 s ping period.
    public var idleTimeout: Duration = .seconds(30)

    /// Send a PING after this long without traffic, so that a connection whose streams are
    /// merely stalled (a reader that does not read) is not closed as idle. A dead peer is still
    /// noticed within `idleTimeout`: pings that get no answer do not count as traffic.
    /// Default: nil (no keep-alive: the pool above pings on its own schedule).
    public var keepAliveInterval: Duration? = nil

    /// Give up a handshake after this long (connect and accept). Default: 10 s.
    public var handshakeTimeout: Duration = .seconds(10)

    /// Concurrent bidirectional streams the peer may open towards us, and the count we hope for
    /// in return. Opening beyond the peer's limit waits for a slot; it does not fail. Default: 100.
    public var maxConcurrentBidirectionalStreams: Int = 100

    /// Initial per-stream receive window. ngtcp2 widens it up to `maxStreamReceiveWindow` as the
    /// application keeps up. Default: 256 KiB.
    public var initialStreamReceiveWindow: Int = 256 * 1024
    /// Upper bound of a stream's receive window, so of the bytes one stream can buffer for a
    /// reader that does not read. Default: 16 MiB.
    public var maxStreamReceiveWindow: Int = 16 * 1024 * 1024
    /// Initial connection receive window. Default: 1 MiB.
    public var initialConnectionReceiveWindow: Int = 1024 * 1024
    /// Upper bound of the connection receive window, and the bytes buffered unread across a
    /// connection's streams beyond which connection credit waits for the application to read.
    /// Below it, connection credit returns as bytes arrive (stream credit only as they are
    /// read), so a stream left unread cannot starve the connection's other streams. So at most
    /// about twice this many bytes wait unread per connection. Default: 24 MiB.
    public var maxConnectionReceiveWindow: Int = 24 * 1024 * 1024

    /// Bytes a stream holds for sending (written but not yet acknowledged) before `write`
    /// suspends. Default: 4 MiB: enough to keep a loopback path full.
    public var streamSendBufferLimit: Int = 4 * 1024 * 1024

    /// Largest UDP payload we send. Default: 1452 (fits a 1500-byte Ethernet MTU over IPv6).
    public var maxUDPPayloadSize: Int = 1452

    /// Packets built per send call and handed to the kernel in one GSO write. Default: 32.
    public var maxPacketsPerBatch: Int = 32

    /// Established incoming connections waiting for `accept`. Past this, new ones are refused
    /// with CONNECTION_REFUSED. Default: 256.
    public var acceptBacklog: Int = 256

    /// Connections (client and server, handshaking or not) one endpoint holds. Default: 65,536.
    public var maxConnections: Int = 65_536

    /// Peers one endpoint reaches through its relay at a time: each holds a stand-in address
    /// while any connection to it lives. Past this, the stand-in idle longest is forgotten; when
    /// every one is in use, a relayed connect fails with `limit_reached` and datagrams from
    /// further relayed peers are dropped. Default: 4,096.
    public var maxRelayPeers: Int = 4096

    /// Streams the peer opened that wait for `acceptStream`. Bounded anyway by
    /// `maxConcurrentBidirectionalStreams`.
    var streamAcceptBacklog: Int { maxConcurrentBidirectionalStreams }

    /// Use UDP generic segmentation/receive offload when the kernel supports it. Default: true.
    public var useOffload: Bool = true

    /// Socket send and receive buffer sizes asked of the kernel (it may grant less). Default: 4 MiB.
    public var socketBufferSize: Int = 4 * 1024 * 1024

    public init() {}
}

extension Duration {
    /// The duration in nanoseconds, as ngtcp2 counts time.
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = self.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
