import PeerpoolErrors
import PeerpoolIdentity

/// An error from the pool: a stable code to match on and a message naming the peer and cause.
public struct PoolError: PeerpoolError {
    public typealias Code = ErrorCode<PoolError>

    public let code: Code
    public let message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation
    public let peer: ID52?

    public init(_ code: Code, peer: ID52? = nil, _ message: String, file: String = #fileID, line: Int = #line) {
        self.location = SourceLocation(fileID: file, line: line)
        self.code = code
        self.peer = peer
        self.message = message
    }
}

extension ErrorCode where Domain == PoolError {
    /// No address is known for the peer (no `@host:port`, nothing in the address book).
    public static let noAddress = Self("no_address")
    /// Connecting (handshake included) failed or took longer than the connect timeout.
    public static let connectFailed = Self("connect_failed")
    /// The connection carrying this request failed; the message names the cause.
    public static let connectionLost = Self("connection_lost")
    /// The peer did not acknowledge the header within the ack timeout.
    public static let ackTimeout = Self("ack_timeout")
    /// The pool holds `maxConnections` connections and none is idle.
    public static let tooManyConnections = Self("too_many_connections")
    /// `maxWaitersPerPeer` requests already wait for this peer.
    public static let tooManyWaiters = Self("too_many_waiters")
    /// The pool is shutting down.
    public static let shutDown = Self("shut_down")
    /// The address given is not `ID52` or `ID52@host:port`.
    public static let badAddress = Self("bad_address")
    /// The endpoint's socket cannot send to the peer's address (IPv6 on an IPv4 socket,
    /// broadcast, multicast, no route). Only this request fails; the message names the
    /// address and the kernel's answer.
    public static let addressUnreachable = Self("address_unreachable")
    /// Looking the peer up (DNS discovery) failed: no answer, a server error, a malformed
    /// record. The message names the name asked for and the cause.
    public static let discoveryFailed = Self("discovery_failed")
    /// The pool was made without `relays:`, so it cannot use a relay.
    public static let noRelay = Self("no_relay")
    /// A socket already has another home relay (one relay per socket).
    public static let limitReached = Self("limit_reached")
    /// The local identity asked for is not on the endpoint.
    public static let noIdentity = Self("no_identity")
}
