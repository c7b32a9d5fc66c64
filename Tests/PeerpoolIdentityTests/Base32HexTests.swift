import Testing

@testable import PeerpoolIdentity

@Suite struct Base32HexTests {
    /// RFC 4648 section 10, base32hex, lowercased and without padding.
    static let vectors: [(plain: String, encoded: String)] = [
        ("", ""),
        ("f", "co"),
        ("fo", "cpng"),
        ("foo", "cpnmu"),
        ("foob", "cpnmuog"),
        ("fooba", "cpnmuoj1"),
        ("foobar", "cpnmuoj1e8"),
    ]

    @Test(arguments: vectors)
    func encode_matchesRFC4648Vector(plain: String, encoded: String) {
        #expect(Base32Hex.encode(Array(plain.utf8)) == encoded)
    }

    @Test(arguments: vectors)
    func decode_matchesRFC4648Vector(plain: String, encoded: String) throws {
        #expect(try Base32Hex.decode(encoded) == Array(plain.utf8))
    }

    @Test func encodeThenDecode_returnsTheBytes_forEveryLengthUpTo40() throws {
        for length in 0...40 {
            let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max) }
            let encoded = Base32Hex.encode(bytes)
            #expect(encoded.count == (length * 8 + 4) / 5)
            #expect(try Base32Hex.decode(encoded) == bytes)
        }
    }

    @Test func encode_preservesByteOrder() {
        let low = Base32Hex.encode([0x00, 0xff, 0xff])
        let high = Base32Hex.encode([0x01, 0x00, 0x00])
        #expect(low < high)
    }

    @Test func decode_whenCharacterOutsideAlphabet_reportsCharacterAndOffset() {
        #expect(throws: Base32Hex.DecodeError.invalidCharacter("w", offset: 2)) {
            try Base32Hex.decode("cpw")
        }
        #expect(throws: Base32Hex.DecodeError.invalidCharacter("C", offset: 0)) {
            try Base32Hex.decode("CPNG")
        }
        #expect(throws: Base32Hex.DecodeError.invalidCharacter("=", offset: 2)) {
            try Base32Hex.decode("co======")
        }
    }

    @Test func decode_whenTrailingBitsAreSet_throws() {
        // "co" is "f"; "cp" carries the same byte plus a set bit in the 2 trailing bits.
        #expect(throws: Base32Hex.DecodeError.nonZeroTrailingBits) {
            try Base32Hex.decode("cp")
        }
    }

    @Test(arguments: ["c", "cpn", "cpnmuo"])
    func decode_whenLengthEncodesNoWholeByte_throwsInvalidLength(input: String) {
        #expect(throws: Base32Hex.DecodeError.invalidLength(input.count)) {
            try Base32Hex.decode(input)
        }
    }
}
