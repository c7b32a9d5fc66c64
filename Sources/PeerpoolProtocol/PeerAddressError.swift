import PeerpoolErrors
import PeerpoolIdentity

/// `PeerAddress(parsing:)` refused its text: not `ID52` or `ID52@host:port`. Its code is the
/// pool's `bad_address`, so the command line and the wire name it as before.
public struct PeerAddressError: PeerpoolError {
    /// Always `bad_address`; a struct like the other errors' codes so callers match it the same way.
    public typealias Code = ErrorCode<PeerAddressError>

    public let code: Code
    public let message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation
    /// The ID52, when the text started with a valid one.
    public let peer: ID52?

    public init(peer: ID52? = nil, _ message: String, file: String = #fileID, line: Int = #line) {
        self.location = SourceLocation(fileID: file, line: line)
        self.code = .badAddress
        self.peer = peer
        self.message = message
    }
}

extension ErrorCode where Domain == PeerAddressError {
    /// The address given is not `ID52` or `ID52@host:port`.
    public static let badAddress = Self("bad_address")
}
