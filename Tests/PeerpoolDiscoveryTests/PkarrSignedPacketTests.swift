import NIOCore
import PeerpoolIdentity
import Testing

@testable import PeerpoolDiscovery

/// Reference packets come from `Interop/vectors.py`: dnslib builds the DNS part, Python's
/// cryptography signs with ed25519, independently of the Swift code.
@Suite struct PkarrSignedPacketTests {
    static let seed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    static let otherSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"
    static let timestamp: UInt64 = 1_764_680_000_123_456
    static let values = ["relay=http://127.0.0.1:3340/", "addr=127.0.0.1:4433", "addr=[::1]:4434"]

    @Test func build_isByteForByteThePacketPythonBuilds() async throws {
        let key = try SecretKey(hexSeed: Self.seed)
        let record = try IrohEndpointRecord(peer: key.id52, txtValues: Self.values)
        let ours = try PkarrSignedPacket(signing: record, as: key, timestamp: Self.timestamp)
        let theirs = try await vectors(["pkarr", Self.seed, "\(Self.timestamp)"] + Self.values)
        // ed25519 signatures are deterministic (RFC 8032), so the whole packet must agree.
        #expect(hex(ours.bytes) == theirs)
    }

    @Test func pythonReadsAndVerifiesOurPacket() async throws {
        let key = try SecretKey(hexSeed: Self.otherSeed)
        let record = IrohEndpointRecord(peer: key.id52, addresses: [try SocketAddress(ipAddress: "10.1.2.3", port: 7)],
                                        relayURLs: ["https://relay.example/"])
        let packet = try PkarrSignedPacket(signing: record, as: key, timestamp: 42)
        let lines = try await vectors("pkarr-read", hex(packet.bytes)).split(separator: "\n").map(String.init)
        let name = "_iroh.\(ZBase32.encode(key.id52))"
        #expect(lines == ["42", "\(name) 30 relay=https://relay.example/", "\(name) 30 addr=10.1.2.3:7"])
    }

    @Test func decode_ofPythonPacket_verifiesAndExtractsTheRecord() async throws {
        let key = try SecretKey(hexSeed: Self.seed)
        let packet = try PkarrSignedPacket(decoding: bytes(hex: try await vectors(["pkarr", Self.seed, "\(Self.timestamp)"] + Self.values)),
                                           expected: key.id52)
        #expect(packet.timestamp == Self.timestamp)
        let (record, ttl) = try packet.irohRecord()
        #expect(ttl == 30)
        #expect(record.relayURLs == ["http://127.0.0.1:3340/"])
        #expect(record.addresses == [try SocketAddress(ipAddress: "127.0.0.1", port: 4433), try SocketAddress(ipAddress: "::1", port: 4434)])
        // The relay form (no key) decodes to the same packet.
        #expect(try PkarrSignedPacket(relayPayload: packet.relayPayload, peer: key.id52) == packet)
    }

    @Test func decode_refusesAPacketSignedByAnotherKey() async throws {
        let forged = bytes(hex: try await vectors("pkarr-forged", Self.seed, "1", Self.otherSeed, "addr=127.0.0.1:1"))
        #expect(throws: DiscoveryError(.pkarrBadSignature, "")) { try PkarrSignedPacket(decoding: forged) }
    }

    @Test func decode_refusesAPacketForAnotherKeyThanAskedFor() async throws {
        let packet = bytes(hex: try await vectors("pkarr", Self.otherSeed, "1", "addr=127.0.0.1:1"))
        let asked = try SecretKey(hexSeed: Self.seed).id52
        #expect(throws: DiscoveryError(.pkarrWrongKey, "")) { try PkarrSignedPacket(decoding: packet, expected: asked) }
        // The same bytes presented as `asked`'s relay payload fail the signature instead.
        #expect(throws: DiscoveryError(.pkarrBadSignature, "")) { try PkarrSignedPacket(relayPayload: packet[32...], peer: asked) }
    }

    @Test func decode_refusesTamperedTruncatedAndOversizePackets() throws {
        let key = try SecretKey(hexSeed: Self.seed)
        let good = try PkarrSignedPacket(signing: IrohEndpointRecord(peer: key.id52, relayURLs: ["http://r/"]), as: key, timestamp: 9).bytes
        var tampered = good
        tampered[tampered.count - 1] ^= 1
        #expect(throws: DiscoveryError(.pkarrBadSignature, "")) { try PkarrSignedPacket(decoding: tampered) }
        var laterTimestamp = good
        laterTimestamp[103] ^= 1
        #expect(throws: DiscoveryError(.pkarrBadSignature, "")) { try PkarrSignedPacket(decoding: laterTimestamp) }
        #expect(throws: DiscoveryError(.pkarrMalformed, "")) { try PkarrSignedPacket(decoding: good.prefix(103)) }
        #expect(throws: DiscoveryError(.pkarrMalformed, "")) { try PkarrSignedPacket(decoding: good.prefix(20)) }
        #expect(throws: DiscoveryError(.pkarrMalformed, "")) { try PkarrSignedPacket(decoding: good + [UInt8](repeating: 0, count: 1001)) }
    }

    @Test func build_refusesRecordsOver1000Bytes() throws {
        let key = SecretKey.generate()
        let addresses = try (1...60).map { try SocketAddress(ipAddress: "10.0.0.\($0)", port: 40000 + $0) }
        #expect(throws: DiscoveryError(.pkarrTooLarge, "")) {
            try PkarrSignedPacket(signing: IrohEndpointRecord(peer: key.id52, addresses: addresses), as: key, timestamp: 1)
        }
    }

    @Test func signedButMalformedRecords_areRefusedClearly() throws {
        let key = SecretKey.generate()
        let name = IrohEndpointRecord.name(of: key.id52)
        for bad in ["addr=not-an-address", "addr=127.0.0.1", "addr=1.2.3.4:0", "relay=ftp://x/", "noequals"] {
            let packet = try PkarrSignedPacket(signing: [.txt(name: name, ttl: 30, bad)], as: key, timestamp: 1)
            #expect(throws: DiscoveryError(.badIrohRecord, "")) { try packet.irohRecord() }
        }
        // Unknown keys are ignored, as iroh ignores them.
        let packet = try PkarrSignedPacket(signing: [.txt(name: name, ttl: 30, "user-data=hello")], as: key, timestamp: 1)
        #expect(try packet.irohRecord().record.isEmpty)
    }
}
