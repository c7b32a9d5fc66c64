/// Errors of the stream protocol and the pool: a stable code and a message a user can act on.
public struct StreamProtocolError: Error, CustomStringConvertible, Equatable, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The header line is not valid UTF-8 JSON, or is too long.
        public static let malformedHeader = Code("malformed_header")
        /// The header names no protocol we know.
        public static let unknownProtocol = Code("unknown_protocol")
        /// The peer answered something other than `ack`.
        public static let notAcknowledged = Code("not_acknowledged")
        /// The peer does not serve this protocol.
        public static let refused = Code("protocol_refused")
        /// A ping did not get exactly `ack\npong\n` and the end of the stream.
        public static let badPong = Code("bad_pong")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
    public static func == (a: StreamProtocolError, b: StreamProtocolError) -> Bool { a.code == b.code }
}
