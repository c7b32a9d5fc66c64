import Crypto
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A peer's ed25519 secret key: what proves it owns its ``ID52``.
///
/// Stored as fastn-id52 stores it, so key files move between the two: a `.private-key` file holds
/// the 64 hex characters of the 32-byte seed and a newline. Printing a `SecretKey` (description,
/// debug description, `dump`) shows only its ID52, so the secret cannot leak into logs by accident.
public struct SecretKey: Sendable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public let privateKey: Curve25519.Signing.PrivateKey
    /// Derived once here, since deriving the public key costs a scalar multiplication.
    public let id52: ID52

    /// The environment variable ``load(fromEnvironment:environment:)`` reads by default; lets
    /// containers pass the key without a file on disk.
    public static let defaultEnvironmentVariable = "PEERPOOL_SECRET_KEY"

    /// Key files are tiny (65 bytes); anything much larger is the wrong file, and the bound keeps
    /// a path like `/dev/zero` from filling memory.
    private static let maximumKeyFileSize = 4096

    public init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
        self.id52 = ID52(publicKey: privateKey.publicKey)
    }

    /// A new key from the system's secure random number generator.
    public static func generate() -> SecretKey {
        SecretKey(privateKey: Curve25519.Signing.PrivateKey())
    }

    /// The 32-byte RFC 8032 seed. Throws ``IdentityError/Code/wrongLength`` for any other size.
    public init(seed: some Collection<UInt8>) throws {
        let bytes = Array(seed)
        guard bytes.count == 32 else {
            throw IdentityError(
                code: .wrongLength,
                message: "An ed25519 secret key seed has 32 bytes, but \(bytes.count) arrived."
            )
        }
        do {
            self.init(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: bytes))
        } catch {
            throw IdentityError(
                code: .wrongLength,
                message: "The 32-byte seed was not accepted as an ed25519 secret key: \(error).",
                underlying: error
            )
        }
    }

    /// The text of a key file: 64 hex characters in either case; surrounding whitespace and the
    /// trailing newline are ignored. Throws ``IdentityError/Code/keyFileMalformed``; the message
    /// gives lengths and positions but never the text, which is a secret.
    public init(hexSeed: String) throws {
        let trimmed = hexSeed.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count == 64 else {
            throw IdentityError(
                code: .keyFileMalformed,
                message: "A secret key is written as 64 hexadecimal characters, but this one has \(trimmed.count)."
            )
        }
        let seed: [UInt8]
        do throws(Hex.DecodeError) {
            seed = try Hex.decode(trimmed)
        } catch .invalidCharacter(let offset) {
            throw IdentityError(
                code: .keyFileMalformed,
                message: "A secret key is written as 64 hexadecimal characters, "
                    + "but character \(offset + 1) is not one of 0-9 and a-f."
            )
        } catch .oddLength(let count) {
            throw IdentityError(
                code: .keyFileMalformed,
                message: "A secret key is written as 64 hexadecimal characters, but this one has \(count)."
            )
        }
        try self.init(seed: seed)
    }

    /// The 64 lowercase hex characters of the seed, as written to key files. This is the secret.
    public var hexSeed: String {
        Hex.encode(privateKey.rawRepresentation)
    }

    /// The 64-byte ed25519 signature of `data`; anyone can check it with ``ID52/isValidSignature(_:for:)``.
    public func sign(_ data: some DataProtocol) throws -> [UInt8] {
        Array(try privateKey.signature(for: data))
    }

    public var description: String { "SecretKey(\(id52))" }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: ["id52": id52], displayStyle: .struct)
    }
}

// MARK: - Key files

extension SecretKey {
    /// Writes the key as a fastn-id52 `.private-key` file readable only by its owner.
    ///
    /// The file is created with mode 0600 from its first byte, so no other user can open it in
    /// between. An existing file is never replaced unless `overwrite` is true, because that would
    /// destroy an identity; with `overwrite`, the key goes to a 0600 temporary file in the same
    /// directory that is then renamed over the old one, so a crash leaves either key, never half of one.
    ///
    /// Throws ``IdentityError/Code/keyFileExists`` or ``IdentityError/Code/keyFileUnwritable``.
    public func save(toFile path: String, overwrite: Bool = false) throws {
        let contents = Array((hexSeed + "\n").utf8)
        if !overwrite {
            try Self.writeNewFile(at: path, contents: contents, describedAs: path)
            return
        }
        let temporaryPath = Self.temporaryPath(nextTo: path)
        try Self.writeNewFile(at: temporaryPath, contents: contents, describedAs: path)
        guard rename(temporaryPath, path) == 0 else {
            let error = Self.currentErrno()
            unlink(temporaryPath)
            throw IdentityError(
                code: .keyFileUnwritable,
                message: "Could not save the secret key to \(path): \(Self.describe(error)).",
                underlying: POSIXError(error)
            )
        }
    }

    /// Reads a key file written by ``save(toFile:overwrite:)`` or by fastn-id52.
    ///
    /// Refuses files that group or others may access: a key that others could have read may be
    /// known to them, and a key file left world-readable is a mistake worth stopping for.
    ///
    /// Throws ``IdentityError/Code/keyFileUnreadable``, ``IdentityError/Code/keyFileInsecurePermissions``
    /// or ``IdentityError/Code/keyFileMalformed``; every message names the file.
    /// The keys of `paths`, in order. The same key in two files is refused
    /// (``IdentityError/Code/duplicateIdentity``, naming both files): two certificates for one
    /// name would make the choice of identity ambiguous.
    public static func load(fromFiles paths: [String]) throws -> [SecretKey] {
        var keys: [SecretKey] = []
        var seen: [ID52: String] = [:]
        for path in paths {
            let key = try load(fromFile: path)
            if let earlier = seen[key.id52] {
                throw IdentityError(
                    code: .duplicateIdentity,
                    message: "key files \(earlier) and \(path) both hold \(key.id52); give each identity once")
            }
            seen[key.id52] = path
            keys.append(key)
        }
        return keys
    }

    public static func load(fromFile path: String) throws -> SecretKey {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw unreadable(path, error: currentErrno())
        }
        defer { close(descriptor) }

        // fstat on the open descriptor, not stat on the path, so the mode checked is the mode of
        // the file read even if the path is swapped in between.
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw unreadable(path, error: currentErrno())
        }
        let permissions = status.st_mode & 0o777
        guard permissions & 0o077 == 0 else {
            throw IdentityError(
                code: .keyFileInsecurePermissions,
                message: "Key file \(path) has mode \(octal(permissions)), so other users can access "
                    + "the secret key. Restrict it with `chmod 600 \(path)`; if others may have read it, "
                    + "generate a new key."
            )
        }

        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 512)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                let error = currentErrno()
                if error == .EINTR {
                    continue
                }
                throw unreadable(path, error: error)
            }
            if count == 0 {
                break
            }
            contents.append(contentsOf: chunk[0..<count])
            guard contents.count <= maximumKeyFileSize else {
                throw IdentityError(
                    code: .keyFileMalformed,
                    message: "Key file \(path) is larger than \(maximumKeyFileSize) bytes; "
                        + "a key file holds only 64 hexadecimal characters. Check the path."
                )
            }
        }

        guard let text = String(validating: contents, as: UTF8.self) else {
            throw IdentityError(
                code: .keyFileMalformed,
                message: "Key file \(path) is not text; a key file holds 64 hexadecimal characters. Check the path."
            )
        }
        do {
            return try SecretKey(hexSeed: text)
        } catch let error as IdentityError {
            throw IdentityError(
                code: .keyFileMalformed,
                message: "Key file \(path) does not hold a secret key. \(error.message)",
                underlying: error
            )
        }
    }

    /// Reads the key from an environment variable holding the 64 hex characters of the seed.
    ///
    /// Throws ``IdentityError/Code/environmentVariableMissing`` when the variable is unset or
    /// empty, ``IdentityError/Code/environmentVariableMalformed`` when it is not a key.
    public static func load(
        fromEnvironment variable: String = defaultEnvironmentVariable,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SecretKey {
        guard let value = environment[variable], !value.isEmpty else {
            throw IdentityError(
                code: .environmentVariableMissing,
                message: "Environment variable \(variable) is not set; set it to the 64 hexadecimal "
                    + "characters of a secret key (the contents of a .private-key file)."
            )
        }
        do {
            return try SecretKey(hexSeed: value)
        } catch let error as IdentityError {
            throw IdentityError(
                code: .environmentVariableMalformed,
                message: "Environment variable \(variable) does not hold a secret key. \(error.message)",
                underlying: error
            )
        }
    }

    /// Creates `path` with O_EXCL and mode 0600, writes `contents` and syncs them to disk; removes
    /// the file again if anything fails, so no partial key is left behind.
    private static func writeNewFile(at path: String, contents: [UInt8], describedAs target: String) throws {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let error = currentErrno()
            if error == .EEXIST {
                throw IdentityError(
                    code: .keyFileExists,
                    message: "Key file \(target) already exists; refusing to overwrite it, since that would "
                        + "destroy the identity it holds. Move it away or choose another path.",
                    underlying: POSIXError(error)
                )
            }
            throw IdentityError(
                code: .keyFileUnwritable,
                message: "Could not create key file \(target): \(describe(error)).",
                underlying: POSIXError(error)
            )
        }
        var failure: POSIXErrorCode?
        var offset = 0
        while offset < contents.count {
            let written = contents[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                let error = currentErrno()
                if error == .EINTR {
                    continue
                }
                failure = error
                break
            }
            offset += written
        }
        if failure == nil, fsync(descriptor) != 0 {
            failure = currentErrno()
        }
        if close(descriptor) != 0, failure == nil {
            failure = currentErrno()
        }
        if let failure {
            unlink(path)
            throw IdentityError(
                code: .keyFileUnwritable,
                message: "Could not write key file \(target): \(describe(failure)).",
                underlying: POSIXError(failure)
            )
        }
    }

    /// A fresh name in the directory of `path`, so the final `rename` stays on one file system.
    private static func temporaryPath(nextTo path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let random = Hex.encode((0..<8).map { _ in UInt8.random(in: .min ... .max) })
        return url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).\(random).tmp")
            .path
    }

    private static func unreadable(_ path: String, error: POSIXErrorCode) -> IdentityError {
        IdentityError(
            code: .keyFileUnreadable,
            message: "Could not read key file \(path): \(describe(error)).",
            underlying: POSIXError(error)
        )
    }

    /// "0644" rather than "644", as `ls` and `chmod` users read it.
    private static func octal(_ permissions: mode_t) -> String {
        let digits = String(permissions, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    private static func currentErrno() -> POSIXErrorCode {
        POSIXErrorCode(rawValue: errno) ?? .EIO
    }

    private static func describe(_ error: POSIXErrorCode) -> String {
        String(cString: strerror(error.rawValue))
    }
}
