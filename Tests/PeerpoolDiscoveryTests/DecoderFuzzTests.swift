import PeerpoolIdentity
import PeerpoolTestSupport
import Testing

@testable import PeerpoolDiscovery

/// Seeded mutations of valid DNS messages, pkarr packets and relay frames: every decoder either
/// decodes or throws a DiscoveryError; none traps, loops or reads out of bounds. The seed is in
/// the failure message, so a failure replays.
@Suite struct DecoderFuzzTests {
    static func mutate(_ input: [UInt8], _ random: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<4, using: &random) {
        case 0 where !bytes.isEmpty:                    // flip a few bits
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 1 << UInt8.random(in: 0..<8, using: &random)
            }
        case 1:                                         // truncate
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
        case 2 where !bytes.isEmpty:                    // overwrite a byte with a "special" value
            bytes[Int.random(in: 0..<bytes.count, using: &random)] = [0x00, 0xff, 0xc0, 0x3f, 0x40, 0x80][Int.random(in: 0..<6, using: &random)]
        default:                                        // append garbage
            bytes += (0..<Int.random(in: 1...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
        return bytes
    }

    @Test(arguments: [1, 2, 3])
    func decoders_neverTrap_onMutatedInput(seed: UInt64) throws {
        let key = SecretKey.generate()
        let packet = try PkarrSignedPacket(
            signing: IrohEndpointRecord(peer: key.id52, txtValues: ["relay=https://r.example/", "addr=127.0.0.1:1", "addr=[::1]:2"]),
            as: key, timestamp: 7)
        let query = try DNSMessage.txtQuery(id: 9, name: IrohEndpointRecord.name(of: key.id52, origin: "dns.iroh.link")).encoded(ednsUDPSize: 1232)
        let frames = try [
            RelayFrame.serverChallenge(Array(0..<16)), .serverDeniesAuth(reason: "no"), .receivedDatagramBatch(source: key.id52.publicKeyBytes, ecn: 1, segmentSize: 3, data: [1, 2, 3]),
            .restarting(reconnectInMilliseconds: 1, tryForMilliseconds: 2), .status(2),
        ].map { try $0.encoded() }
        var random = SeededGenerator(seed: seed)
        var decoded = 0, refused = 0
        for _ in 0..<1000 {
            for input in [packet.dnsPacket, query] {
                do {
                    let message = try DNSMessage(decoding: Self.mutate(input, &random))
                    for record in message.answers where record.type == DNSMessage.typeTXT { _ = try? record.txtValue() }
                    decoded += 1
                } catch { refused += 1 }
            }
            do {
                let mutated = try PkarrSignedPacket(decoding: Self.mutate(packet.bytes, &random))
                _ = try? mutated.irohRecord()
                decoded += 1
            } catch { refused += 1 }
            do {
                _ = try RelayFrame(decoding: Self.mutate(frames[Int.random(in: 0..<frames.count, using: &random)], &random))
                decoded += 1
            } catch { refused += 1 }
        }
        // Both outcomes happened, so the mutations reached past the first check.
        #expect(decoded > 100 && refused > 100, "seed \(seed): \(decoded) decoded, \(refused) refused")
    }
}
