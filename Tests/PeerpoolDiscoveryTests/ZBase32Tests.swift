import PeerpoolIdentity
import Testing

@testable import PeerpoolDiscovery

@Suite struct ZBase32Tests {
    @Test func encode_matchesIndependentPythonEncoder_forManyLengths() async throws {
        var generator = SystemRandomNumberGenerator()
        for length in [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 31, 32, 33, 64] {
            let input = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = try await vectors("zbase32", hex(input))
            #expect(ZBase32.encode(input) == expected, "length \(length)")
            #expect(try ZBase32.decode(expected) == input, "length \(length)")
        }
    }

    @Test func knownVectors() throws {
        // Worked by hand: 0xF0 = 11110 000(00) = 30, 0; 0xD4 7A 04 = 11010 10001 11101 00000 0100(0).
        #expect(ZBase32.encode([0xf0]) == "6y")
        #expect(ZBase32.encode([0xd4, 0x7a, 0x04]) == "4t7ye")
        #expect(try ZBase32.decode("6y") == [0xf0])
    }

    @Test func key_roundTripsThroughID52() throws {
        let peer = SecretKey.generate().id52
        let text = ZBase32.encode(peer)
        #expect(text.count == 52)
        #expect(try ZBase32.id52(text) == peer)
    }

    @Test func decode_refusesBadText() {
        #expect(throws: DiscoveryError(.badZBase32, "")) { try ZBase32.decode("ybn!") }
        #expect(throws: DiscoveryError(.badZBase32, "")) { try ZBase32.decode("YB") }       // uppercase is not canonical
        #expect(throws: DiscoveryError(.badZBase32, "")) { try ZBase32.decode("y") }        // 1 char: no whole byte
        #expect(throws: DiscoveryError(.badZBase32, "")) { try ZBase32.decode("6b") }       // trailing bits set
        #expect(throws: DiscoveryError(.badZBase32, "")) { try ZBase32.id52("6y") }         // 1 byte is not a key
    }
}
