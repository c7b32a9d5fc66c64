/// Lowercase hexadecimal, the text form of a secret key seed in fastn-id52 `.private-key` files.
enum Hex {
    /// Why text is not hexadecimal. Carries positions only, never characters: the input is a secret.
    enum DecodeError: Error, Equatable {
        case oddLength(Int)
        /// Zero-based offset of the first character that is not `0-9`, `a-f` or `A-F`.
        case invalidCharacter(offset: Int)
    }

    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var output: [UInt8] = []
        for byte in bytes {
            output.append(digits[Int(byte >> 4)])
            output.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Accepts either case.
    static func decode(_ string: String) throws(DecodeError) -> [UInt8] {
        let characters = Array(string)
        guard characters.count % 2 == 0 else {
            throw .oddLength(characters.count)
        }
        var output: [UInt8] = []
        output.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = characters[index].hexDigitValue, characters[index].isASCII else {
                throw .invalidCharacter(offset: index)
            }
            guard let low = characters[index + 1].hexDigitValue, characters[index + 1].isASCII else {
                throw .invalidCharacter(offset: index + 1)
            }
            output.append(UInt8(high << 4 | low))
            index += 2
        }
        return output
    }
}
