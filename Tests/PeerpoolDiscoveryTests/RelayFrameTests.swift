import Foundation
import PeerpoolIdentity
import Testing

@testable import PeerpoolDiscovery

@Suite struct RelayFrameTests {
    static let key = [UInt8](repeating: 0xab, count: 32)

    @Test func varint_roundTripsAtEveryLengthBoundary() {
        for value: UInt64 in [0, 63, 64, 16383, 16384, (1 << 30) - 1, 1 << 30, QUICVarint.maximum] {
            var out: [UInt8] = []
            QUICVarint.encode(value, into: &out)
            #expect(out.count == (value < 64 ? 1 : value < 16384 ? 2 : value < 1 << 30 ? 4 : 8))
            #expect(QUICVarint.decode(out[...])?.value == value)
            #expect(QUICVarint.decode(out.dropLast()) == nil || out.count == 1)
        }
        // RFC 9000 appendix A.1's examples.
        #expect(QUICVarint.decode([0x7b, 0xbd][...])?.value == 15293)
        #expect(QUICVarint.decode([0x9d, 0x7f, 0x3e, 0x7d][...])?.value == 494_878_333)
        #expect(QUICVarint.decode([0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][...])?.value == 151_288_809_941_952_652)
    }

    @Test func everyFrame_roundTrips_withTheDocumentedLayout() throws {
        let cases: [(RelayFrame, [UInt8])] = [
            (.serverChallenge(Array(0..<16)), [0] + Array(0..<16)),
            (.clientAuth(key: Self.key, signature: [UInt8](repeating: 7, count: 64)), [1] + Self.key + [0x40] + [UInt8](repeating: 7, count: 64)),
            (.serverConfirmsAuth, [2]),
            (.serverDeniesAuth(reason: "no"), [3, 2, 0x6e, 0x6f]),
            (.sendDatagram(destination: Self.key, ecn: 2, data: [9, 9]), [4] + Self.key + [2, 9, 9]),
            (.sendDatagramBatch(destination: Self.key, ecn: 0, segmentSize: 1200, data: [1]), [5] + Self.key + [0, 0x04, 0xb0, 1]),
            (.receivedDatagram(source: Self.key, ecn: 1, data: []), [6] + Self.key + [1]),
            (.receivedDatagramBatch(source: Self.key, ecn: 3, segmentSize: 1, data: [5, 6]), [7] + Self.key + [3, 0, 1, 5, 6]),
            (.endpointGone(Self.key), [8] + Self.key),
            (.ping(Array(1...8)), [9] + Array(1...8)),
            (.pong(Array(1...8)), [10] + Array(1...8)),
            (.health("bad"), [11, 0x62, 0x61, 0x64]),
            (.restarting(reconnectInMilliseconds: 1000, tryForMilliseconds: 258), [12, 0, 0, 0x03, 0xe8, 0, 0, 1, 2]),
            (.status(1), [13, 1]),
            (.unknown(type: 100, payload: [1]), [0x40, 100, 1]),
        ]
        for (frame, wire) in cases {
            #expect(try frame.encoded() == wire, "\(frame)")
            #expect(try RelayFrame(decoding: wire) == frame, "\(frame)")
        }
    }

    @Test func decode_refusesMalformedFrames() {
        let bad: [[UInt8]] = [
            [],                                   // no type
            [0x40],                               // type varint cut off
            [0] + Array(0..<15),                  // short challenge
            [0] + Array(0..<17),                  // long challenge
            [1] + Self.key + [0x41] + [UInt8](repeating: 0, count: 64),   // signature length byte wrong
            [2, 0],                               // confirmation with payload
            [3, 5, 0x61],                         // reason longer than frame
            [4] + Self.key + [4],                 // ECN 4
            [5] + Self.key + [0, 0, 0],           // segment size 0
            [8] + Self.key.dropLast(),            // short id
            [9, 1, 2, 3],                         // short ping
            [12, 0, 0, 0],                        // short restarting
            [13, 1, 2],                           // status with garbage
            [4] + Self.key + [0] + [UInt8](repeating: 0, count: RelayFrame.maximumFrameSize),   // over 64 KiB
        ]
        for wire in bad {
            #expect(throws: DiscoveryError(.relayFrameMalformed, ""), "\(wire.prefix(4))") { try RelayFrame(decoding: wire) }
        }
        #expect(throws: DiscoveryError(.relayFrameMalformed, "")) {
            try RelayFrame.sendDatagram(destination: Self.key, ecn: 0, data: [UInt8](repeating: 0, count: RelayFrame.maximumFrameSize)).encoded()
        }
    }

    /// The signed message is what b3sum derives from the challenge, and the signature verifies
    /// under the client's key.
    @Test func clientAuth_signsB3sumsDerivedKeyOfTheChallenge() async throws {
        let secretKey = SecretKey.generate()
        let challenge = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("peerpool-challenge-\(UUID().uuidString)")
        try Data(challenge).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let derived = try await run("/usr/bin/b3sum", ["--derive-key", RelayFrame.challengeContext, "--no-names", file.path])
            .trimmingCharacters(in: .whitespacesAndNewlines)

        guard case .clientAuth(let key, let signature) = try RelayFrame.clientAuth(answering: challenge, as: secretKey) else {
            Issue.record("not a clientAuth frame")
            return
        }
        #expect(key == secretKey.id52.publicKeyBytes)
        #expect(secretKey.id52.isValidSignature(signature, for: bytes(hex: derived)))
        #expect(RelayFrame.verify(key: key, signature: signature, challenge: challenge))
        var otherChallenge = challenge
        otherChallenge[0] ^= 1
        #expect(!RelayFrame.verify(key: key, signature: signature, challenge: otherChallenge))
    }
}
