import Testing

@testable import PeerpoolIdentity

@Suite struct Ed25519PointValidationTests {
    /// p = 2^255 - 19, little-endian.
    static let p: [UInt8] = [0xed] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
    /// p + 1, the second-smallest non-canonical y.
    static let pPlusOne: [UInt8] = [0xee] + [UInt8](repeating: 0xff, count: 30) + [0x7f]
    /// p - 1, that is y = -1.
    static let minusOne: [UInt8] = [0xec] + [UInt8](repeating: 0xff, count: 30) + [0x7f]

    /// 32 little-endian bytes of `y` with the x sign bit set as asked.
    static func encoding(y: UInt64, xIsOdd: Bool = false) -> [UInt8] {
        let bytes = (0..<32).map { $0 < 8 ? UInt8(truncatingIfNeeded: y >> (8 * UInt64($0))) : 0 }
        return withSignBit(bytes, xIsOdd: xIsOdd)
    }

    static func withSignBit(_ bytes: [UInt8], xIsOdd: Bool) -> [UInt8] {
        var bytes = bytes
        if xIsOdd {
            bytes[31] |= 0x80
        }
        return bytes
    }

    /// The first y >= 2 for which (y^2 - 1) / (d y^2 + 1) is not a square, so no x exists.
    static func firstYWithoutPoint() -> UInt64? {
        (2..<200).lazy.first { !Ed25519PointValidation.isValidPublicKey(encoding(y: $0)) }
    }

    @Test func curveConstant_matchesRFC8032() {
        #expect(
            String(Ed25519PointValidation.d)
                == "37095705934669439343138083508754565189542113879843219016388785533085940283555"
        )
        #expect(
            String(Ed25519PointValidation.p)
                == "57896044618658097711785492504343953926634992332820282019728792003956564819949"
        )
    }

    @Test func fastArithmetic_matchesBigIntDivisionAndPower() {
        let p = Ed25519PointValidation.p
        // A pseudo-random walk through the field, starting from the constant d.
        var a = Ed25519PointValidation.d
        for step in 0..<30 {
            let product = a * (p - 1 - a)
            #expect(Ed25519PointValidation.reduce(product) == product % p, "step \(step)")
            #expect(
                Ed25519PointValidation.eulerCriterion(a)
                    == a.power(Ed25519PointValidation.eulerExponent, modulus: p),
                "step \(step)"
            )
            a = (a * a + 12_345) % p
        }
        #expect(Ed25519PointValidation.reduce(p) == 0)
        #expect(Ed25519PointValidation.reduce(p + p + 5) == 5)
        #expect(Ed25519PointValidation.reduce((p - 1) * (p - 1)) == 1)
        // p = 5 (mod 8): -1 is a square (ed25519 uses sqrt(-1)), 2 is not.
        #expect(Ed25519PointValidation.eulerCriterion(p - 1) == 1)
        #expect(Ed25519PointValidation.eulerCriterion(2) == p - 1)
    }

    @Test func knownVector_isValid() throws {
        let bytes = try Base32Hex.decode("i66fo538lfl5ombdf6tcdbrabp4hmp9asv7nrffuc2im13ct4q60")
        #expect(Ed25519PointValidation.isValidPublicKey(bytes))
    }

    @Test func rfc8032TestVectorKeys_areValid() throws {
        for hex in [
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
            "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        ] {
            #expect(Ed25519PointValidation.isValidPublicKey(try Hex.decode(hex)), "\(hex)")
        }
    }

    @Test func generatedKeys_areAllValid() {
        for _ in 0..<1000 {
            let key = SecretKey.generate()
            #expect(Ed25519PointValidation.isValidPublicKey(key.id52.publicKeyBytes), "\(key.id52)")
        }
    }

    @Test func nonCanonicalY_isRejected() {
        // y = p would reduce to y = 0, which is a point; only the canonical spelling is accepted.
        #expect(Ed25519PointValidation.isValidPublicKey(Self.encoding(y: 0)))
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.p))
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.pPlusOne))
        #expect(!Ed25519PointValidation.isValidPublicKey([UInt8](repeating: 0xff, count: 31) + [0x7f]))
    }

    @Test func yWithoutX_isRejected_whileGeneratedKeyIsNot() throws {
        let y = try #require(Self.firstYWithoutPoint())
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.encoding(y: y)))
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.encoding(y: y, xIsOdd: true)))
        #expect(Ed25519PointValidation.isValidPublicKey(SecretKey.generate().id52.publicKeyBytes))
    }

    @Test func aboutHalfOfAllY_haveNoPoint() {
        let rejected = (2..<202).filter { !Ed25519PointValidation.isValidPublicKey(Self.encoding(y: UInt64($0))) }
        #expect((50...150).contains(rejected.count), "\(rejected.count) of 200 rejected")
    }

    @Test func xZeroWithSignBit_isRejected() {
        // y = 1 (the neutral element) and y = -1 both give x = 0, which has no odd "negative".
        #expect(Ed25519PointValidation.isValidPublicKey(Self.encoding(y: 1)))
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.encoding(y: 1, xIsOdd: true)))
        #expect(Ed25519PointValidation.isValidPublicKey(Self.minusOne))
        #expect(!Ed25519PointValidation.isValidPublicKey(Self.withSignBit(Self.minusOne, xIsOdd: true)))
    }

    @Test func signBit_doesNotChangeValidityWhenXIsNonZero() {
        let bytes = SecretKey.generate().id52.publicKeyBytes
        var flipped = bytes
        flipped[31] ^= 0x80
        #expect(Ed25519PointValidation.isValidPublicKey(flipped))
    }

    @Test(arguments: [0, 31, 33, 64])
    func wrongByteCount_isRejected(count: Int) {
        #expect(!Ed25519PointValidation.isValidPublicKey([UInt8](repeating: 0, count: count)))
    }
}
