import PeerpoolIdentity

/// z-base-32 (Zooko's human-oriented base32), the spelling pkarr and iroh give a 32-byte ed25519
/// key in DNS names: `_iroh.<z-base-32 key>.dns.iroh.link`. Bits are read most significant first
/// as in RFC 4648, only the alphabet differs; no padding, and the 4 bits after the 256 of a key
/// must be zero so every key has exactly one spelling (52 characters).
public enum ZBase32 {
    public static let alphabet: [UInt8] = Array("ybndrfg8ejkmcpqxot1uwisza345h769".utf8)

    private static let decodeTable: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (value, ascii) in alphabet.enumerated() { table[Int(ascii)] = Int8(value) }
        return table
    }()

    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bitCount = 0
        for byte in bytes {
            buffer = ((buffer << 8) | UInt32(byte)) & 0xfff
            bitCount += 8
            while bitCount >= 5 {
                bitCount -= 5
                output.append(alphabet[Int((buffer >> UInt32(bitCount)) & 0x1f)])
            }
        }
        if bitCount > 0 { output.append(alphabet[Int((buffer << UInt32(5 - bitCount)) & 0x1f)]) }
        return String(decoding: output, as: UTF8.self)
    }

    /// Decodes canonical z-base-32 (lowercase, no padding, zero trailing bits). Throws
    /// ``DiscoveryError/Code/badZBase32`` naming the offending character or length.
    public static func decode(_ string: some StringProtocol) throws(DiscoveryError) -> [UInt8] {
        let characters = Array(string.utf8)
        guard characters.count <= 1024 else {
            throw DiscoveryError(.badZBase32, "z-base-32 text of \(characters.count) characters is longer than any key")
        }
        switch characters.count % 8 {
        case 1, 3, 6:
            throw DiscoveryError(.badZBase32, "\(characters.count) z-base-32 characters encode no whole number of bytes")
        default: break
        }
        var output: [UInt8] = []
        output.reserveCapacity(characters.count * 5 / 8)
        var buffer: UInt32 = 0
        var bitCount = 0
        for (offset, ascii) in characters.enumerated() {
            guard ascii < 128, decodeTable[Int(ascii)] >= 0 else {
                throw DiscoveryError(.badZBase32, "character \(offset + 1) of \"\(String(decoding: characters.prefix(64), as: UTF8.self))\" is not z-base-32 (ybndrfg8ejkmcpqxot1uwisza345h769)")
            }
            buffer = ((buffer << 5) | UInt32(decodeTable[Int(ascii)])) & 0xfff
            bitCount += 5
            if bitCount >= 8 {
                bitCount -= 8
                output.append(UInt8((buffer >> UInt32(bitCount)) & 0xff))
            }
        }
        guard buffer & ((1 << UInt32(bitCount)) - 1) == 0 else {
            throw DiscoveryError(.badZBase32, "the last z-base-32 character sets bits beyond the last byte; this is not a canonical spelling")
        }
        return output
    }

    /// The z-base-32 spelling of a peer's key, as in `_iroh.<this>.dns.iroh.link`.
    public static func encode(_ peer: ID52) -> String { encode(peer.publicKeyBytes) }

    /// The peer whose key this z-base-32 text spells. Throws ``DiscoveryError/Code/badZBase32``
    /// for bad text and for 32 bytes that are not an ed25519 key.
    public static func id52(_ string: some StringProtocol) throws(DiscoveryError) -> ID52 {
        let bytes = try decode(string)
        guard bytes.count == 32 else {
            throw DiscoveryError(.badZBase32, "z-base-32 \"\(string.prefix(64))\" holds \(bytes.count) bytes; a key has 32 (52 characters)")
        }
        do {
            return try ID52(rawPublicKey: bytes)
        } catch {
            throw DiscoveryError(.badZBase32, "z-base-32 \"\(string)\" is not an ed25519 public key: \(error)")
        }
    }
}
