import PeerpoolIdentity

/// `PeerAddress(parsing:)` refused its text: not `ID52` or `ID52@host:port`. Its code is the
/// pool's `bad_address`, so the command line and the wire name it as before.
public struct PeerAddressError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Always `bad_address`; a struct like the other errors' codes so callers match it the same way.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The address given is not `ID52` or `ID52@host:port`.
        public static let badAddress = Code("bad_address")
    }

    public let code: Code
    public let message: String
    /// The ID52, when the text started with a valid one.
    public let peer: ID52?

    public init(peer: ID52? = nil, _ message: String) {
        self.code = .badAddress
        self.peer = peer
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (a: PeerAddressError, b: PeerAddressError) -> Bool { a.code == b.code }
}
