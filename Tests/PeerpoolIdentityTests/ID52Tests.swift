import Foundation
import Testing

@testable import PeerpoolIdentity

@Suite struct ID52Tests {
    /// From fastn-id52's tests.
    static let vector = "i66fo538lfl5ombdf6tcdbrabp4hmp9asv7nrffuc2im13ct4q60"

    /// Bytes that are not an ed25519 point: y = 2, 3, ... until one has no x.
    static func bytesThatAreNotAPoint() throws -> [UInt8] {
        let y = try #require(Ed25519PointValidationTests.firstYWithoutPoint())
        return Ed25519PointValidationTests.encoding(y: y)
    }

    func parseError(_ string: String) -> IdentityError? {
        #expect(throws: IdentityError.self) { try ID52(parsing: string) }
    }

    @Test func parse_knownVector_printsBackIdentically() throws {
        let id = try ID52(parsing: Self.vector)
        #expect(id.description == Self.vector)
        #expect("\(id)" == Self.vector)
        #expect(id.publicKeyBytes.count == 32)
        #expect(Base32Hex.encode(id.publicKeyBytes) == Self.vector)
        #expect(ID52(Self.vector) == id)
        #expect(ID52(publicKey: id.publicKey) == id)
        #expect(try ID52(rawPublicKey: id.publicKeyBytes) == id)
    }

    @Test func parse_whenTooShort_throwsWrongLength() {
        let error = parseError(String(Self.vector.dropLast()))
        #expect(error?.code == .wrongLength)
        #expect(error?.message.contains("51 characters") == true)
        #expect(error?.message.contains(String(Self.vector.dropLast())) == true)
        #expect(parseError("")?.code == .wrongLength)
    }

    @Test func parse_whenTooLong_throwsWrongLength() {
        let error = parseError(Self.vector + "0")
        #expect(error?.code == .wrongLength)
        #expect(error?.message.contains("53 characters") == true)
    }

    @Test func parse_whenInputIsHuge_quotesOnlyItsStart() {
        let error = parseError(String(repeating: "a", count: 10_000))
        #expect(error?.code == .wrongLength)
        #expect((error?.message.count ?? .max) < 300)
    }

    @Test func parse_whenCharacterIsOutsideAlphabet_throwsInvalidCharacter() {
        let input = "w" + Self.vector.dropFirst()
        let error = parseError(input)
        #expect(error?.code == .invalidCharacter)
        #expect(error?.message.contains("\"w\" at position 1") == true)
        #expect(error?.message.contains(input) == true)
    }

    @Test(arguments: ["-", "=", " ", "é", "🙂"])
    func parse_whenCharacterIsNotBase32Hex_throwsInvalidCharacter(character: String) {
        var characters = Array(Self.vector)
        characters[10] = Character(character)
        let error = parseError(String(characters))
        #expect(error?.code == .invalidCharacter)
        #expect(error?.message.contains("position 11") == true)
    }

    @Test func parse_whenUppercase_throwsInvalidCharacterWithLowercaseHint() {
        let error = parseError(Self.vector.uppercased())
        #expect(error?.code == .invalidCharacter)
        #expect(error?.message.contains("\"I\" at position 1") == true)
        #expect(error?.message.contains("lowercase") == true)
        #expect(error?.message.contains(Self.vector) == true)
    }

    @Test func parse_whenUppercaseLetterHasNoLowercaseInAlphabet_givesNoLowercaseHint() {
        let error = parseError("W" + Self.vector.dropFirst())
        #expect(error?.code == .invalidCharacter)
        #expect(error?.message.contains("\"W\" at position 1") == true)
        #expect(error?.message.contains("lowercase") == false)
    }

    @Test func parse_whenTrailingBitsAreSet_throwsNonZeroTrailingBits() {
        let error = parseError(String(Self.vector.dropLast()) + "1")
        #expect(error?.code == .nonZeroTrailingBits)
        #expect(error?.message.contains(String(Self.vector.dropLast()) + "1") == true)
    }

    @Test func parse_whenLastCharacterIsG_acceptsTheTopBit() throws {
        // The last character carries one key bit: '0' or 'g'. Some valid key must end in 'g'.
        let keys = (0..<200).map { _ in SecretKey.generate().id52.description }
        #expect(keys.allSatisfy { $0.hasSuffix("0") || $0.hasSuffix("g") })
        let endingInG = try #require(keys.first { $0.hasSuffix("g") })
        #expect(try ID52(parsing: endingInG).description == endingInG)
    }

    @Test func parse_whenBytesAreNotACurvePoint_throwsNotAnEd25519Key() throws {
        let input = Base32Hex.encode(try Self.bytesThatAreNotAPoint())
        #expect(input.count == 52)
        let error = parseError(input)
        #expect(error?.code == .notAnEd25519Key)
        #expect(error?.message.contains(input) == true)
    }

    @Test func rawPublicKey_whenNotACurvePoint_throwsNotAnEd25519Key() throws {
        let bytes = try Self.bytesThatAreNotAPoint()
        #expect(throws: IdentityError(code: .notAnEd25519Key, message: "")) {
            try ID52(rawPublicKey: bytes)
        }
        #expect(throws: IdentityError(code: .notAnEd25519Key, message: "")) {
            try ID52(rawPublicKey: Ed25519PointValidationTests.p)
        }
    }

    @Test(arguments: [0, 31, 33])
    func rawPublicKey_whenNot32Bytes_throwsWrongLength(count: Int) {
        let error = #expect(throws: IdentityError.self) {
            try ID52(rawPublicKey: [UInt8](repeating: 1, count: count))
        }
        #expect(error?.code == .wrongLength)
        #expect(error?.message.contains("\(count) arrived") == true)
    }

    @Test func losslessInit_returnsNilForInvalidInput() {
        #expect(ID52("") == nil)
        #expect(ID52(Self.vector.uppercased()) == nil)
        #expect(ID52(String(Self.vector.dropLast()) + "1") == nil)
        #expect(ID52(Self.vector) != nil)
    }

    @Test func generatedKeys_alwaysHave52CharacterID52sThatParseBack() throws {
        for _ in 0..<300 {
            let id = SecretKey.generate().id52
            #expect(id.description.count == 52)
            #expect(id.description.allSatisfy { "0123456789abcdefghijklmnopqrstuv".contains($0) })
            #expect(try ID52(parsing: id.description) == id)
        }
    }

    @Test func ordering_followsTheKeyBytes() {
        let ids = (0..<50).map { _ in SecretKey.generate().id52 }
        let byString = ids.sorted().map(\.publicKeyBytes)
        let byBytes = ids.map(\.publicKeyBytes).sorted { $0.lexicographicallyPrecedes($1) }
        #expect(byString == byBytes)
    }

    @Test func equalityAndHashing_useTheKey() throws {
        let parsed = try ID52(parsing: Self.vector)
        let rebuilt = try ID52(rawPublicKey: parsed.publicKeyBytes)
        #expect(Set([parsed, rebuilt]).count == 1)
        #expect(parsed != SecretKey.generate().id52)
    }

    @Test func codable_isASingleString() throws {
        let id = try ID52(parsing: Self.vector)
        let json = try JSONEncoder().encode(["peer": id])
        #expect(String(decoding: json, as: UTF8.self) == "{\"peer\":\"\(Self.vector)\"}")
        #expect(try JSONDecoder().decode([String: ID52].self, from: json) == ["peer": id])
    }

    @Test func codable_whenStringIsInvalid_throwsDataCorrupted() {
        let json = Data("[\"\(Self.vector.uppercased())\"]".utf8)
        let error = #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([ID52].self, from: json)
        }
        guard case .dataCorrupted(let context) = error else {
            Issue.record("expected dataCorrupted, got \(String(describing: error))")
            return
        }
        #expect((context.underlyingError as? IdentityError)?.code == .invalidCharacter)
    }

    @Test func isValidSignature_checksAgainstThisKey() throws {
        let key = SecretKey.generate()
        let message = Array("hello".utf8)
        let signature = try key.sign(message)
        #expect(key.id52.isValidSignature(signature, for: message))
        #expect(!SecretKey.generate().id52.isValidSignature(signature, for: message))
    }
}
