/// A stable, snake_case name for one kind of failure, scoped to the error type that uses it.
///
/// Programs match on codes, people read messages. Every error type in peerpool shares this one
/// shape, so a code read from the wire, a log or a test compares the same way everywhere. The
/// `Domain` parameter (the error type) keeps each type's static members apart: `PoolError.Code`
/// and `WireError.Code` can both have a `.timeout` without the names colliding.
///
/// Codes are an open set (static members in constrained extensions, not an enum) so adding one
/// never breaks a caller's exhaustive switch, and codes that arrive from another process (the
/// worker's pool codes relayed over ZeroMQ) can be represented as they are.
public struct ErrorCode<Domain>: Hashable, Sendable, RawRepresentable, ExpressibleByStringLiteral,
    CustomStringConvertible
{
    /// The code itself, e.g. `connect_failed`.
    public let name: String

    public init(_ name: String) { self.name = name }
    public init(rawValue: String) { self.name = rawValue }
    public init(stringLiteral value: String) { self.name = value }

    public var rawValue: String { name }
    public var description: String { name }

    /// Whether `name` is lowercase ASCII words joined by underscores, the form every code we
    /// define takes (codes arriving from elsewhere may not).
    public var isSnakeCase: Bool {
        guard let first = name.utf8.first, first >= UInt8(ascii: "a"), first <= UInt8(ascii: "z"),
            name.utf8.last != UInt8(ascii: "_")
        else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
        }
    }
}
