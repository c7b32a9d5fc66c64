import PeerpoolErrors
import Foundation

/// A configuration that cannot be used: a matchable ``Code``, a message, and where the fault is.
///
/// Equality compares only the code, so tests and callers match on what went wrong rather than on
/// the wording. The description names the file, line and option, as a compiler does:
/// `peerpool.yaml:7: hang_timeout: must be more than 0 seconds (got -1)`.
public struct SupervisorConfigurationError: PeerpoolError {
    /// What went wrong. Static members rather than an enum, so new codes do not break callers'
    /// exhaustive switches.
    public typealias Code = ErrorCode<SupervisorConfigurationError>

    public let code: Code
    /// What is wrong and, where it helps, the range or form expected and the value found.
    public var message: String
    /// The configuration file (or the `source` name given for YAML text), when there is one.
    public var file: String?
    /// The line of `file` the fault is on, counting from 1, when known.
    public var line: Int?
    /// The option at fault, as spelt in the file (`hang_timeout`, `pool.connect_timeout`).
    public var key: String?
    /// Where in peerpool's code the error was made (not the configuration's file and line).
    public let location: SourceLocation

    public init(
        _ code: Code, key: String? = nil, file: String? = nil, line: Int? = nil, _ message: String,
        sourceFile: String = #fileID, sourceLine: Int = #line
    ) {
        self.location = SourceLocation(fileID: sourceFile, line: sourceLine)
        self.code = code
        self.key = key
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        var parts: [String] = []
        if let file {
            parts.append(line.map { "\(file):\($0)" } ?? file)
        }
        if let key {
            parts.append(key)
        }
        parts.append(message)
        return parts.joined(separator: ": ")
    }
}

/// ArgumentParser and `localizedDescription` show `errorDescription`: the whole description, since
/// the file, line and option are what the user needs to find the fault.
extension SupervisorConfigurationError: LocalizedError {
    public var errorDescription: String? { description }
}

extension ErrorCode where Domain == SupervisorConfigurationError {
    /// The configuration file cannot be opened or read (missing, a directory, no permission,
    /// too large).
    public static let unreadableFile = Self("unreadable_file")
    /// The text is not YAML, not UTF-8, or not a mapping of options at the top.
    public static let invalidYAML = Self("invalid_yaml")
    /// An option this version does not know, usually a typo. Refused rather than ignored so a
    /// misspelt limit cannot silently fall back to its default.
    public static let unknownKey = Self("unknown_key")
    /// An option whose value has the wrong type: a string where a number is expected, a
    /// scalar where a list is expected, and so on.
    public static let wrongType = Self("wrong_type")
    /// An option whose value has the right type but is out of range or inconsistent with
    /// another option.
    public static let invalidValue = Self("invalid_value")
}
