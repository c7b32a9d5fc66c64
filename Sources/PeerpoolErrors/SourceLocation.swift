/// Where an error was made: kept for logs and bug reports, never compared (two errors with the
/// same code are equal wherever they came from).
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    /// `#fileID` of the throwing code, e.g. `PeerpoolPool/ConnectionManager.swift`.
    public let fileID: String
    public let line: Int

    public init(fileID: String = #fileID, line: Int = #line) {
        self.fileID = fileID
        self.line = line
    }

    public var description: String { "\(fileID):\(line)" }
}
