import PeerpoolErrors

/// Errors of the stream protocol and the pool: a stable code and a message a user can act on.
public struct StreamProtocolError: PeerpoolError {
    public typealias Code = ErrorCode<StreamProtocolError>

    public let code: Code
    public let message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.location = SourceLocation(fileID: file, line: line)
        self.code = code
        self.message = message
    }
}

extension ErrorCode where Domain == StreamProtocolError {
    /// The header line is not valid UTF-8 JSON, or is too long.
    public static let malformedHeader = Self("malformed_header")
    /// The header names no protocol we know.
    public static let unknownProtocol = Self("unknown_protocol")
    /// The peer answered something other than `ack`.
    public static let notAcknowledged = Self("not_acknowledged")
    /// The peer does not serve this protocol.
    public static let refused = Self("protocol_refused")
    /// A ping did not get exactly `ack\npong\n` and the end of the stream.
    public static let badPong = Self("bad_pong")
}
