/// RFC 4648 section 7 "base32hex", lowercase and unpadded: the encoding of an ID52.
///
/// fastn-id52 (data-encoding's `BASE32_DNSSEC`) picked it because the result is a valid DNS label
/// (52 characters, under the 63 limit) and sorts in the same order as the bytes it encodes. Padding
/// is never written and never accepted, since `=` is not allowed in a DNS label.
enum Base32Hex {
    /// Why a string is not canonical base32hex; ``ID52`` turns these into ``IdentityError``s that
    /// name the input.
    enum DecodeError: Error, Equatable {
        /// The character at this zero-based offset is not in ``Base32Hex/alphabet``.
        case invalidCharacter(Character, offset: Int)
        /// A character count no byte count encodes to (1, 3 or 6 modulo 8).
        case invalidLength(Int)
        /// The bits after the last whole byte are not zero, so re-encoding would not give the input back.
        case nonZeroTrailingBits
    }

    static let alphabet: [UInt8] = Array("0123456789abcdefghijklmnopqrstuv".utf8)

    /// Maps an ASCII code to its 5-bit value, or -1 for characters outside the alphabet
    /// (uppercase included: an ID52 has exactly one spelling).
    private static let decodeTable: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (value, ascii) in alphabet.enumerated() {
            table[Int(ascii)] = Int8(value)
        }
        return table
    }()

    static func encode(_ bytes: [UInt8]) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count * 8 + 4) / 5)
        var buffer: UInt32 = 0
        var bitCount = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bitCount += 8
            while bitCount >= 5 {
                bitCount -= 5
                output.append(alphabet[Int((buffer >> UInt32(bitCount)) & 0x1f)])
            }
        }
        if bitCount > 0 {
            output.append(alphabet[Int((buffer << UInt32(5 - bitCount)) & 0x1f)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    static func decode(_ string: String) throws(DecodeError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(string.utf8.count * 5 / 8)
        var buffer: UInt32 = 0
        var bitCount = 0
        var characterCount = 0
        for (offset, character) in string.enumerated() {
            guard let ascii = character.asciiValue, ascii < 128, decodeTable[Int(ascii)] >= 0 else {
                throw .invalidCharacter(character, offset: offset)
            }
            buffer = ((buffer << 5) | UInt32(decodeTable[Int(ascii)])) & 0x1fff
            bitCount += 5
            if bitCount >= 8 {
                bitCount -= 8
                output.append(UInt8(truncatingIfNeeded: buffer >> UInt32(bitCount)))
            }
            characterCount += 1
        }
        // Five or more bits left over means a whole character that encodes no byte.
        guard bitCount < 5 else {
            throw .invalidLength(characterCount)
        }
        guard buffer & ((1 << UInt32(bitCount)) - 1) == 0 else {
            throw .nonZeroTrailingBits
        }
        return output
    }
}
