/// What every peerpool error is: a matchable snake_case code, a sentence a user can act on, and
/// where it was made.
///
/// Equality compares only the code, so callers and tests match on what went wrong rather than on
/// the wording or the line (the pattern of swift-certificates' `CertificateError` and
/// swift-service-lifecycle's `ServiceGroupError`). `description` is `code: message`, the form logs
/// and the wire protocol use.
public protocol PeerpoolError: CodedError, Equatable, CustomStringConvertible {
    var code: ErrorCode<Self> { get }
}

/// The code-agnostic view of any peerpool error, for code that handles errors from several layers
/// at once (the worker passes every layer's code to the supervisor unchanged).
public protocol CodedError: Error, Sendable {
    /// The code as a string, e.g. `connect_failed`.
    var codeName: String { get }
    /// A complete sentence naming the input or peer at fault and, where there is one, the fix.
    var message: String { get }
    /// Where the error was made.
    var location: SourceLocation { get }
}

extension PeerpoolError {
    public var codeName: String { code.name }
    public var description: String { "\(code): \(message)" }
    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.code == rhs.code }
}
