import PeerpoolErrors
import Foundation

/// Any failure of this module: a matchable ``Code`` plus a sentence the user can act on.
///
/// Equality compares only the code, so tests and callers match on what went wrong rather than on
/// the wording (the pattern of swift-certificates' `CertificateError`).
public struct IdentityError: PeerpoolError {
    /// What went wrong. Static members rather than an enum, so new codes do not break callers'
    /// exhaustive switches.
    public typealias Code = ErrorCode<IdentityError>

    public let code: Code
    /// A complete sentence naming the input at fault and, where there is one, the fix.
    public let message: String
    /// Where the error was made, for logs; not compared.
    public let location: SourceLocation
    /// The error from the OS or a library that caused this one, kept for logs and debugging.
    public let underlying: (any Error)?

    public init(code: Code, message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.location = SourceLocation(fileID: file, line: line)
        self.code = code
        self.message = message
        self.underlying = underlying
    }
}

/// ArgumentParser and `localizedDescription` show `errorDescription`: `code: message`, as every
/// other peerpool error prints ("Error: insecure_permissions: Key file … is readable by others …"),
/// so a script can match the code.
extension IdentityError: LocalizedError {
    public var errorDescription: String? { description }
}

extension ErrorCode where Domain == IdentityError {
    /// An ID52 that is not 52 characters, or key bytes that are not 32 bytes.
    public static let wrongLength = Self("wrong_length")
    /// An ID52 with a character outside the lowercase base32hex alphabet `0-9a-v`.
    public static let invalidCharacter = Self("invalid_character")
    /// An ID52 whose last character sets bits beyond the 256 bits of the key.
    public static let nonZeroTrailingBits = Self("non_zero_trailing_bits")
    /// 32 bytes that do not decode to a point on the ed25519 curve.
    public static let notAnEd25519Key = Self("not_an_ed25519_key")
    /// A key file that cannot be opened or read.
    public static let keyFileUnreadable = Self("key_file_unreadable")
    /// A key file that cannot be created or written.
    public static let keyFileUnwritable = Self("key_file_unwritable")
    /// A key file readable or writable by group or others.
    public static let keyFileInsecurePermissions = Self("key_file_insecure_permissions")
    /// Secret key text that is not 64 hexadecimal characters.
    public static let keyFileMalformed = Self("key_file_malformed")
    /// Saving would replace an existing key file, which could destroy an identity.
    public static let keyFileExists = Self("key_file_exists")
    /// Two key files hold the same key: one identity given twice, usually a typo.
    public static let duplicateIdentity = Self("duplicate_identity")
    /// The environment variable meant to hold the secret key is not set.
    public static let environmentVariableMissing = Self("environment_variable_missing")
    /// The environment variable is set but does not hold 64 hexadecimal characters.
    public static let environmentVariableMalformed = Self("environment_variable_malformed")
    /// Building, serializing or parsing an X.509 certificate failed.
    public static let certificate = Self("certificate")
}
