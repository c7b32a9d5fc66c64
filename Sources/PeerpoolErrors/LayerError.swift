/// The error of a layer that needs nothing beyond a code, a message and a location: one type,
/// told apart per layer by a marker type, so each layer's codes stay its own
/// (`QUICError.Code.handshakeTimeout` is not `StreamProtocolError.Code`) without each layer
/// writing the same struct again. Layers whose errors carry more (a peer, a request id, an
/// underlying error) define their own `PeerpoolError`.
public struct LayerError<Layer>: PeerpoolError {
    public typealias Code = ErrorCode<Self>

    public let code: Code
    public let message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.location = SourceLocation(fileID: file, line: line)
    }
}
