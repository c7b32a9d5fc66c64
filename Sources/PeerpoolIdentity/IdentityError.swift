import Foundation

/// Any failure of this module: a matchable ``Code`` plus a sentence the user can act on.
///
/// Equality compares only the code, so tests and callers match on what went wrong rather than on
/// the wording (the pattern of swift-certificates' `CertificateError`).
public struct IdentityError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What went wrong. Static members rather than an enum, so new codes do not break callers'
    /// exhaustive switches.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String

        private init(_ name: String) {
            self.name = name
        }

        public var description: String { name }

        /// An ID52 that is not 52 characters, or key bytes that are not 32 bytes.
        public static let wrongLength = Code("wrongLength")
        /// An ID52 with a character outside the lowercase base32hex alphabet `0-9a-v`.
        public static let invalidCharacter = Code("invalidCharacter")
        /// An ID52 whose last character sets bits beyond the 256 bits of the key.
        public static let nonZeroTrailingBits = Code("nonZeroTrailingBits")
        /// 32 bytes that do not decode to a point on the ed25519 curve.
        public static let notAnEd25519Key = Code("notAnEd25519Key")
        /// A key file that cannot be opened or read.
        public static let keyFileUnreadable = Code("keyFileUnreadable")
        /// A key file that cannot be created or written.
        public static let keyFileUnwritable = Code("keyFileUnwritable")
        /// A key file readable or writable by group or others.
        public static let keyFileInsecurePermissions = Code("keyFileInsecurePermissions")
        /// Secret key text that is not 64 hexadecimal characters.
        public static let keyFileMalformed = Code("keyFileMalformed")
        /// Saving would replace an existing key file, which could destroy an identity.
        public static let keyFileExists = Code("keyFileExists")
        /// The environment variable meant to hold the secret key is not set.
        public static let environmentVariableMissing = Code("environmentVariableMissing")
        /// The environment variable is set but does not hold 64 hexadecimal characters.
        public static let environmentVariableMalformed = Code("environmentVariableMalformed")
        /// Building, serializing or parsing an X.509 certificate failed.
        public static let certificate = Code("certificate")
    }

    public let code: Code
    /// A complete sentence naming the input at fault and, where there is one, the fix.
    public let message: String
    /// The error from the OS or a library that caused this one, kept for logs and debugging.
    public let underlying: (any Error)?

    public init(code: Code, message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public static func == (lhs: IdentityError, rhs: IdentityError) -> Bool {
        lhs.code == rhs.code
    }

    public var description: String { "\(code): \(message)" }
}

/// ArgumentParser and `localizedDescription` show `errorDescription`, so users see the plain
/// message ("Error: Key file … is readable by others …") rather than the code prefix meant for logs.
extension IdentityError: LocalizedError {
    public var errorDescription: String? { message }
}
