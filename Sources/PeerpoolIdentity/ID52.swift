import Crypto
import Foundation
import Synchronization

/// A peer's name: its ed25519 public key as 52 lowercase base32hex characters, compatible with
/// fastn-id52.
///
/// Bytes from outside (``init(parsing:)``, ``init(rawPublicKey:)``) are checked to be a curve
/// point, so code that receives an `ID52` need not re-validate it. Equality, hashing and ordering
/// follow the key bytes; ordering by the string is the same as ordering by the bytes, because
/// base32hex preserves byte order.
public struct ID52: Hashable, Sendable, Comparable, CustomStringConvertible, LosslessStringConvertible, Codable {
    /// The 32-byte RFC 8032 encoding of the public key.
    public let publicKeyBytes: [UInt8]
    /// Kept next to the bytes so signature checks do not rebuild the key each time.
    public let publicKey: Curve25519.Signing.PublicKey
    /// The 52-character form, computed once since it is printed, logged and compared often.
    public let description: String

    static let characterCount = 52
    static let keyByteCount = 32

    /// Trusts `publicKey`, so it cannot fail: a key derived from a private key is always a curve
    /// point. For bytes from outside use ``init(rawPublicKey:)``, which checks them.
    public init(publicKey: Curve25519.Signing.PublicKey) {
        self.publicKey = publicKey
        self.publicKeyBytes = Array(publicKey.rawRepresentation)
        self.description = Base32Hex.encode(publicKeyBytes)
    }

    /// Accepts the 32-byte RFC 8032 encoding of an ed25519 public key, as found in certificates
    /// and on the wire. Throws ``IdentityError/Code/wrongLength`` or ``IdentityError/Code/notAnEd25519Key``.
    public init(rawPublicKey: some Collection<UInt8>) throws {
        let bytes = Array(rawPublicKey)
        guard bytes.count == Self.keyByteCount else {
            throw IdentityError(
                code: .wrongLength,
                message: "An ed25519 public key has \(Self.keyByteCount) bytes, but \(bytes.count) arrived."
            )
        }
        try self.init(validatedBytes: bytes, describedAs: "The public key \(Base32Hex.encode(bytes))")
    }

    /// Parses the 52-character form. Each way a string can be wrong has its own
    /// ``IdentityError/Code``, and the message quotes the input so the user can find the typo.
    public init(parsing string: String) throws {
        // The supervisor, the worker and the pool each read the same ID52 per request: a string
        // seen before costs one dictionary lookup instead of a base32 decode and a key rebuild.
        if let known = Self.parsed.withLock({ $0[string] }) {
            self = known
            return
        }
        try self.init(parsingUncached: string)
        let parsed = self
        Self.parsed.withLock { table in
            if table.count >= Self.parsedLimit { table.removeAll(keepingCapacity: true) }
            table[string] = parsed
        }
    }

    /// ID52s parsed lately, by their text; at most `parsedLimit` (about 5 MB), forgotten all at
    /// once when full (a miss only costs one more parse). Only valid ones are kept, so a
    /// stranger sending garbage cannot fill it with anything but real keys.
    private static let parsed = Mutex<[String: ID52]>([:])
    static let parsedLimit = 16_384

    private init(parsingUncached string: String) throws {
        var quoted: String { Self.quote(string) }
        // Counting characters walks grapheme clusters; 52 ASCII bytes are 52 characters.
        let ascii = string.utf8.allSatisfy { $0 < 0x80 }
        let count = ascii ? string.utf8.count : string.count
        guard count == Self.characterCount else {
            throw IdentityError(
                code: .wrongLength,
                message: "ID52 \(quoted) has \(count) characters, but an ID52 has exactly \(Self.characterCount)."
            )
        }
        let bytes: [UInt8]
        do throws(Base32Hex.DecodeError) {
            bytes = try Base32Hex.decode(string)
        } catch .invalidCharacter(let character, let offset) {
            // Suggest the lowercase spelling only when that spelling would decode.
            let lowercased = string.lowercased()
            let hint =
                character.isUppercase && (try? Base32Hex.decode(lowercased)) != nil
                ? " ID52s are lowercase; write it as \(Self.quote(lowercased))."
                : ""
            throw IdentityError(
                code: .invalidCharacter,
                message: "ID52 \(quoted) has \(Self.quote(String(character))) at position \(offset + 1), "
                    + "but an ID52 uses only the characters 0-9 and a-v.\(hint)"
            )
        } catch .invalidLength(let count) {
            throw IdentityError(
                code: .wrongLength,
                message: "ID52 \(quoted) has \(count) characters, but an ID52 has exactly \(Self.characterCount)."
            )
        } catch .nonZeroTrailingBits {
            throw IdentityError(
                code: .nonZeroTrailingBits,
                message: "ID52 \(quoted) is not valid: its last character must be '0' or 'g' "
                    + "(52 characters carry 260 bits, the last 4 are always zero). Check that it was copied correctly."
            )
        }
        try self.init(validatedBytes: bytes, describedAs: "ID52 \(quoted)")
    }

    /// For `LosslessStringConvertible`; use ``init(parsing:)`` to learn why a string was rejected.
    public init?(_ description: String) {
        try? self.init(parsing: description)
    }

    private init(validatedBytes bytes: [UInt8], describedAs subject: String) throws {
        guard Ed25519PointValidation.isValidPublicKey(bytes) else {
            throw IdentityError(
                code: .notAnEd25519Key,
                message: "\(subject) is not a valid ed25519 public key (it is not a point on the curve). "
                    + "Check that it was copied correctly."
            )
        }
        do {
            self.init(publicKey: try Curve25519.Signing.PublicKey(rawRepresentation: bytes))
        } catch {
            throw IdentityError(
                code: .notAnEd25519Key,
                message: "\(subject) is not a valid ed25519 public key: \(error).",
                underlying: error
            )
        }
    }

    /// Whether `signature` is this key's ed25519 signature of `data`.
    public func isValidSignature(_ signature: some DataProtocol, for data: some DataProtocol) -> Bool {
        publicKey.isValidSignature(signature, for: data)
    }

    public static func == (lhs: ID52, rhs: ID52) -> Bool {
        lhs.publicKeyBytes == rhs.publicKeyBytes
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(publicKeyBytes)
    }

    public static func < (lhs: ID52, rhs: ID52) -> Bool {
        lhs.description < rhs.description
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let string = try container.decode(String.self)
        do {
            try self.init(parsing: string)
        } catch let error as IdentityError {
            throw DecodingError.dataCorrupted(
                DecodingError.Context(
                    codingPath: decoder.codingPath,
                    debugDescription: error.message,
                    underlyingError: error
                )
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Quotes user input for a message, shortened so a pasted file does not flood the terminal.
    private static func quote(_ string: String) -> String {
        let limit = 80
        if string.count <= limit {
            return "\"\(string)\""
        }
        return "\"\(string.prefix(limit))…\""
    }
}
