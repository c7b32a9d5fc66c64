/// Limits and timers of a `PeerPool`. Every queue it implies is bounded by a field here.
public struct PoolConfiguration: Sendable {
    /// Give up connecting (handshake included) after this long. Default: 10 s.
    public var connectTimeout: Duration = .seconds(10)
    /// Give up waiting for the peer's `ack` (or a ping's `pong`) after this long. Default: 10 s.
    public var ackTimeout: Duration = .seconds(10)
    /// Ping an idle connection this often. Default: 12 s, as fastn-net.
    public var pingInterval: Duration = .seconds(12)
    /// Close a connection after this many ping intervals without requests or open streams.
    /// Default: 5 (one minute).
    public var idlePeriodsBeforeClose: Int = 5
    /// Connections the pool holds at most. A new peer past the cap closes the least recently
    /// used idle connection, or fails at once with `too_many_connections`. Default: 10,000.
    public var maxConnections: Int = 10_000
    /// Requests that may wait for one peer at once; past it, `too_many_waiters` at once.
    /// Default: 2,048.
    public var maxWaitersPerPeer: Int = 2_048
    /// Application code used to close connections at shutdown or when idle. Default: 0.
    public var closeCode: UInt64 = 0

    public init() {}
}
