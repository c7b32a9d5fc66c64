import PeerpoolIdentity

/// An error from the pool: a stable code to match on and a message naming the peer and cause.
public struct PoolError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No address is known for the peer (no `@host:port`, nothing in the address book).
        public static let noAddress = Code("no_address")
        /// Connecting (handshake included) failed or took longer than the connect timeout.
        public static let connectFailed = Code("connect_failed")
        /// The connection carrying this request failed; the message names the cause.
        public static let connectionLost = Code("connection_lost")
        /// The peer did not acknowledge the header within the ack timeout.
        public static let ackTimeout = Code("ack_timeout")
        /// The pool holds `maxConnections` connections and none is idle.
        public static let tooManyConnections = Code("too_many_connections")
        /// `maxWaitersPerPeer` requests already wait for this peer.
        public static let tooManyWaiters = Code("too_many_waiters")
        /// The pool is shutting down.
        public static let shutDown = Code("shut_down")
        /// The address given is not `ID52` or `ID52@host:port`.
        public static let badAddress = Code("bad_address")
        /// The endpoint's socket cannot send to the peer's address (IPv6 on an IPv4 socket,
        /// broadcast, multicast, no route). Only this request fails; the message names the
        /// address and the kernel's answer.
        public static let addressUnreachable = Code("address_unreachable")
        /// Looking the peer up (DNS discovery) failed: no answer, a server error, a malformed
        /// record. The message names the name asked for and the cause.
        public static let discoveryFailed = Code("discovery_failed")
        /// The local identity asked for is not on the endpoint.
        public static let noIdentity = Code("no_identity")
    }

    public let code: Code
    public let message: String
    public let peer: ID52?

    public init(_ code: Code, peer: ID52? = nil, _ message: String) {
        self.code = code
        self.peer = peer
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (a: PoolError, b: PoolError) -> Bool { a.code == b.code }
}
