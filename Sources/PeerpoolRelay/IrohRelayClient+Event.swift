import PeerpoolIdentity

extension IrohRelayClient {
    /// What happened to the relay connection, in order, on the client's event loop
    /// (``IrohRelayClient/setEventHandler(_:)``). Each is also logged.
    public enum Event: Sendable, Equatable {
        /// The handshake finished; datagrams flow. `protocolVersion`: the subprotocol the relay
        /// chose, `iroh-relay-v2` or `iroh-relay-v1`.
        case connected(protocolVersion: String)
        /// A connection attempt failed or a connection was lost; a reconnect is scheduled with
        /// backoff. Datagrams sent until ``connected(protocolVersion:)`` are dropped and counted.
        case disconnected(RelayError)
        /// The relay says `peer` is not (or no longer) connected to it: datagrams to it are lost.
        case endpointGone(ID52)
        /// The relay's status (protocol v2).
        case status(RelayStatus)
        /// The relay's health problem as text (protocol v1).
        case health(String)
        /// The relay announced a restart; the client reconnects after `reconnectIn`.
        case restarting(reconnectIn: Duration, tryFor: Duration)
        /// ``IrohRelayClient/close()`` finished closing: the last event.
        case closed
    }
}

/// A relay's status code (frame 13 of protocol v2). A struct, not an enum: relays may add codes.
public struct RelayStatus: Hashable, Sendable, CustomStringConvertible {
    public let code: UInt64
    public init(code: UInt64) { self.code = code }

    /// All is well (also sent when this connection becomes the active one again).
    public static let healthy = RelayStatus(code: 0)
    /// Another connection with this endpoint id took over; this one receives nothing until it
    /// becomes the active one again.
    public static let sameEndpointIdConnected = RelayStatus(code: 1)
    /// The relay is rate-limiting this client.
    public static let rateLimited = RelayStatus(code: 2)

    public var description: String {
        switch self {
        case .healthy: "healthy"
        case .sameEndpointIdConnected: "same endpoint id connected elsewhere"
        case .rateLimited: "rate-limited"
        default: "status \(code)"
        }
    }
}
