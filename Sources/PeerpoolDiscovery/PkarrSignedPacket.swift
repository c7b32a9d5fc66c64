import Crypto
import PeerpoolIdentity

/// A pkarr signed packet: a DNS reply packet of records about one key, signed by that key.
///
/// Wire form: `key[32] | signature[64] | timestamp u64 big-endian (µs since 1970) | DNS packet`,
/// the DNS packet at most 1000 bytes. The ed25519 signature covers the bencoded
/// `3:seqi<timestamp>e1:v<length>:` followed by the DNS packet (BEP 44's mutable item, which is
/// what lets pkarr packets live in the mainline DHT too). A relay's `PUT /<z32>` body and `GET`
/// answer are the same bytes without the key.
public struct PkarrSignedPacket: Sendable, Equatable {
    public static let maximumDNSPacketSize = 1000
    static let headerSize = 32 + 64 + 8

    public let peer: ID52
    public let signature: [UInt8]
    public let timestamp: UInt64
    public let dnsPacket: [UInt8]

    /// Signs `records` (names relative to the key, e.g. `_iroh.<z32>`) as `secretKey`.
    /// Throws ``DiscoveryError/Code/pkarrTooLarge`` when the DNS packet would exceed 1000 bytes.
    public init(signing records: [DNSMessage.Record], as secretKey: SecretKey, timestamp: UInt64) throws(DiscoveryError) {
        let packet = try DNSMessage(id: 0, flags: 0x8400, answers: records).encoded()
        guard packet.count <= Self.maximumDNSPacketSize else {
            throw DiscoveryError(.pkarrTooLarge, "the records for \(secretKey.id52) take \(packet.count) bytes; a pkarr packet holds at most \(Self.maximumDNSPacketSize): publish fewer addresses")
        }
        let signature: [UInt8]
        do {
            signature = Array(try secretKey.privateKey.signature(for: Self.signable(timestamp: timestamp, dnsPacket: packet)))
        } catch {
            throw DiscoveryError(.pkarrBadSignature, "signing the pkarr packet for \(secretKey.id52) failed: \(error)")
        }
        self.peer = secretKey.id52
        self.signature = signature
        self.timestamp = timestamp
        self.dnsPacket = packet
    }

    /// The iroh record of `secretKey`'s endpoint, TTL 30, as one signed packet.
    public init(signing record: IrohEndpointRecord, as secretKey: SecretKey, timestamp: UInt64, ttl: UInt32 = IrohEndpointRecord.defaultTTL) throws(DiscoveryError) {
        let name = IrohEndpointRecord.name(of: secretKey.id52)
        try self.init(signing: record.txtValues.map { .txt(name: name, ttl: ttl, $0) }, as: secretKey, timestamp: timestamp)
    }

    /// Decodes and verifies the full form (key first). When `expected` is given, a packet for
    /// another key is refused with ``DiscoveryError/Code/pkarrWrongKey``.
    public init(decoding bytes: some Collection<UInt8>, expected: ID52? = nil) throws(DiscoveryError) {
        let bytes = Array(bytes)
        guard bytes.count >= 32 else {
            throw DiscoveryError(.pkarrMalformed, "a pkarr packet of \(bytes.count) bytes is shorter than its 104-byte header")
        }
        let key: ID52
        do {
            key = try ID52(rawPublicKey: bytes[0..<32])
        } catch {
            throw DiscoveryError(.pkarrMalformed, "a pkarr packet's first 32 bytes are not an ed25519 key: \(error)")
        }
        if let expected, expected != key {
            throw DiscoveryError(.pkarrWrongKey, "a pkarr packet asked for \(expected) is for \(key); refusing it")
        }
        try self.init(relayPayload: bytes[32...], peer: key)
    }

    /// Decodes and verifies a relay's form (no key): `signature | timestamp | DNS packet` of `peer`.
    public init(relayPayload bytes: some Collection<UInt8>, peer: ID52) throws(DiscoveryError) {
        let bytes = Array(bytes)
        guard bytes.count >= 72 else {
            throw DiscoveryError(.pkarrMalformed, "a pkarr packet for \(peer) of \(bytes.count + 32) bytes is shorter than its 104-byte header")
        }
        guard bytes.count - 72 <= Self.maximumDNSPacketSize else {
            throw DiscoveryError(.pkarrMalformed, "a pkarr packet for \(peer) carries \(bytes.count - 72) bytes of DNS; at most \(Self.maximumDNSPacketSize) are allowed")
        }
        let signature = Array(bytes[0..<64])
        let timestamp = bytes[64..<72].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let packet = Array(bytes[72...])
        guard peer.isValidSignature(signature, for: Self.signable(timestamp: timestamp, dnsPacket: packet)) else {
            throw DiscoveryError(.pkarrBadSignature, "the pkarr packet for \(peer) is not signed by that key; refusing its records")
        }
        self.peer = peer
        self.signature = signature
        self.timestamp = timestamp
        self.dnsPacket = packet
    }

    /// What the signature covers.
    static func signable(timestamp: UInt64, dnsPacket: [UInt8]) -> [UInt8] {
        Array("3:seqi\(timestamp)e1:v\(dnsPacket.count):".utf8) + dnsPacket
    }

    /// `signature | timestamp | DNS packet`: the body of a relay `PUT /<z32>`.
    public var relayPayload: [UInt8] {
        signature + (0..<8).reversed().map { UInt8(truncatingIfNeeded: timestamp >> UInt64($0 * 8)) } + dnsPacket
    }

    /// The full form: `key | relayPayload`.
    public var bytes: [UInt8] { peer.publicKeyBytes + relayPayload }

    /// The records in the DNS packet.
    public func records() throws(DiscoveryError) -> [DNSMessage.Record] {
        try DNSMessage(decoding: dnsPacket).answers
    }

    /// The `_iroh.<z32>` TXT values of this packet as an iroh endpoint record, and their
    /// smallest TTL. Records under other names are ignored.
    public func irohRecord() throws(DiscoveryError) -> (record: IrohEndpointRecord, ttl: UInt32) {
        let name = IrohEndpointRecord.name(of: peer).lowercased()
        let txt = try records().filter { $0.type == DNSMessage.typeTXT && $0.name.lowercased() == name }
        var values: [String] = []
        for record in txt { values.append(try record.txtValue()) }
        return (try IrohEndpointRecord(peer: peer, txtValues: values), txt.map(\.ttl).min() ?? 0)
    }
}
