import PeerpoolIdentity

/// One message of the iroh relay protocol (iroh-relay's `protos/handshake.rs` and
/// `protos/relay.rs`), as carried in one binary WebSocket message: a QUIC varint type and a
/// payload. Values only: no sockets, so every case is testable on its own.
public enum RelayFrame: Sendable, Equatable {
    /// 0, server → client: 16 random bytes to sign.
    case serverChallenge([UInt8])
    /// 1, client → server: the client's key and its signature over
    /// `BLAKE3.deriveKey(context: RelayFrame.challengeContext, material: challenge)`.
    case clientAuth(key: [UInt8], signature: [UInt8])
    /// 2: the server accepted the client.
    case serverConfirmsAuth
    /// 3: the server refused the client, with its reason.
    case serverDeniesAuth(reason: String)
    /// 4: a datagram for `destination` (ECN codepoint 0-3).
    case sendDatagram(destination: [UInt8], ecn: UInt8, data: [UInt8])
    /// 5: datagrams for `destination`, `segmentSize` bytes each (GSO-style).
    case sendDatagramBatch(destination: [UInt8], ecn: UInt8, segmentSize: UInt16, data: [UInt8])
    /// 6: a datagram from `source`.
    case receivedDatagram(source: [UInt8], ecn: UInt8, data: [UInt8])
    /// 7: datagrams from `source`, `segmentSize` bytes each.
    case receivedDatagramBatch(source: [UInt8], ecn: UInt8, segmentSize: UInt16, data: [UInt8])
    /// 8: the peer we sent to is not connected to this relay any more.
    case endpointGone([UInt8])
    /// 9 / 10: keep-alive, 8 bytes echoed back.
    case ping([UInt8])
    case pong([UInt8])
    /// 11 (protocol v1): a health problem the relay reports, as text.
    case health(String)
    /// 12: the relay is restarting: reconnect in `reconnectInMilliseconds`, keep trying for `tryForMilliseconds`.
    case restarting(reconnectInMilliseconds: UInt32, tryForMilliseconds: UInt32)
    /// 13 (protocol v2): 0 healthy, 1 the same key connected elsewhere, 2 rate-limited.
    case status(UInt64)
    /// A type this version does not know; kept so callers can ignore it, as iroh does.
    case unknown(type: UInt64, payload: [UInt8])

    public static let challengeContext = "iroh-relay handshake v1 challenge signature"
    /// Largest datagram payload iroh relays carry (iroh-relay's MAX_PACKET_SIZE).
    public static let maximumPayloadSize = 64 * 1024
    /// Largest encoded frame accepted: a maximum payload plus the largest header (type,
    /// key, ECN, segment size).
    public static let maximumFrameSize = maximumPayloadSize + 64

    /// The client's answer to `challenge`: signs the derived key with `secretKey`.
    public static func clientAuth(answering challenge: [UInt8], as secretKey: SecretKey) throws -> RelayFrame {
        let message = BLAKE3.deriveKey(context: challengeContext, material: challenge)
        return .clientAuth(key: secretKey.id52.publicKeyBytes, signature: Array(try secretKey.privateKey.signature(for: message)))
    }

    /// Whether a `clientAuth` answers `challenge` (what a relay checks).
    public static func verify(key: [UInt8], signature: [UInt8], challenge: [UInt8]) -> Bool {
        guard let peer = try? ID52(rawPublicKey: key) else { return false }
        return peer.isValidSignature(signature, for: BLAKE3.deriveKey(context: challengeContext, material: challenge))
    }

    public var type: UInt64 {
        switch self {
        case .serverChallenge: 0
        case .clientAuth: 1
        case .serverConfirmsAuth: 2
        case .serverDeniesAuth: 3
        case .sendDatagram: 4
        case .sendDatagramBatch: 5
        case .receivedDatagram: 6
        case .receivedDatagramBatch: 7
        case .endpointGone: 8
        case .ping: 9
        case .pong: 10
        case .health: 11
        case .restarting: 12
        case .status: 13
        case .unknown(let type, _): type
        }
    }

    public func encoded() throws(DiscoveryError) -> [UInt8] {
        var out: [UInt8] = []
        QUICVarint.encode(type, into: &out)
        func u16(_ v: UInt16) { out += [UInt8(v >> 8), UInt8(v & 0xff)] }
        func u32(_ v: UInt32) { out += (0..<4).reversed().map { UInt8(truncatingIfNeeded: v >> UInt32($0 * 8)) } }
        func fixed(_ bytes: [UInt8], _ count: Int, _ what: String) throws(DiscoveryError) {
            guard bytes.count == count else {
                throw DiscoveryError(.relayFrameMalformed, "a relay \(what) has \(count) bytes, not \(bytes.count)")
            }
            out += bytes
        }
        func ecnByte(_ ecn: UInt8) throws(DiscoveryError) {
            guard ecn <= 3 else { throw DiscoveryError(.relayFrameMalformed, "ECN codepoint \(ecn) is not 0-3") }
            out.append(ecn)
        }
        switch self {
        case .serverChallenge(let challenge): try fixed(challenge, 16, "challenge")
        case .clientAuth(let key, let signature):
            try fixed(key, 32, "key")
            out.append(0x40)
            try fixed(signature, 64, "signature")
        case .serverConfirmsAuth: break
        case .serverDeniesAuth(let reason):
            let bytes = Array(reason.utf8.prefix(1024))
            QUICVarint.encode(UInt64(bytes.count), into: &out)
            out += bytes
        case .sendDatagram(let key, let ecn, let data), .receivedDatagram(let key, let ecn, let data):
            try fixed(key, 32, "endpoint id"); try ecnByte(ecn); out += data
        case .sendDatagramBatch(let key, let ecn, let size, let data), .receivedDatagramBatch(let key, let ecn, let size, let data):
            try fixed(key, 32, "endpoint id"); try ecnByte(ecn); u16(size); out += data
        case .endpointGone(let key): try fixed(key, 32, "endpoint id")
        case .ping(let data), .pong(let data): try fixed(data, 8, "ping payload")
        case .health(let problem): out += Array(problem.utf8.prefix(1024))
        case .restarting(let reconnectIn, let tryFor): u32(reconnectIn); u32(tryFor)
        case .status(let code): QUICVarint.encode(code, into: &out)
        case .unknown(_, let payload): out += payload
        }
        guard out.count <= Self.maximumFrameSize else {
            throw DiscoveryError(.relayFrameMalformed, "a relay frame of \(out.count) bytes is over the \(Self.maximumFrameSize)-byte limit")
        }
        return out
    }

    /// Parses one WebSocket message. Throws ``DiscoveryError/Code/relayFrameMalformed`` naming
    /// the frame type and what is wrong; over-long frames are refused before parsing.
    public init(decoding message: some Collection<UInt8>) throws(DiscoveryError) {
        guard message.count <= Self.maximumFrameSize else {
            throw DiscoveryError(.relayFrameMalformed, "a relay frame of \(message.count) bytes is over the \(Self.maximumFrameSize)-byte limit")
        }
        let bytes = Array(message)[...]
        guard let (type, typeLength) = QUICVarint.decode(bytes) else {
            throw DiscoveryError(.relayFrameMalformed, "a relay frame of \(bytes.count) bytes has no complete type")
        }
        var payload = bytes.dropFirst(typeLength)
        func malformed(_ what: String) -> DiscoveryError {
            DiscoveryError(.relayFrameMalformed, "relay frame type \(type) with \(payload.count) payload bytes: \(what)")
        }
        func take(_ count: Int) throws(DiscoveryError) -> [UInt8] {
            guard payload.count >= count else { throw malformed("cut off") }
            defer { payload = payload.dropFirst(count) }
            return Array(payload.prefix(count))
        }
        func end() throws(DiscoveryError) {
            guard payload.isEmpty else { throw malformed("\(payload.count) bytes left over") }
        }
        func ecn() throws(DiscoveryError) -> UInt8 {
            let value = try take(1)[0]
            guard value <= 3 else { throw malformed("ECN codepoint \(value) is not 0-3") }
            return value
        }
        func u16() throws(DiscoveryError) -> UInt16 { let b = try take(2); return UInt16(b[0]) << 8 | UInt16(b[1]) }
        func u32() throws(DiscoveryError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
        switch type {
        case 0: self = .serverChallenge(try take(16)); try end()
        case 1:
            let key = try take(32)
            guard try take(1) == [0x40] else { throw malformed("the signature is not announced as 64 bytes (0x40)") }
            self = .clientAuth(key: key, signature: try take(64)); try end()
        case 2: try end(); self = .serverConfirmsAuth
        case 3:
            guard let (length, used) = QUICVarint.decode(payload), length <= UInt64(payload.count - used) else {
                throw malformed("the reason's length is cut off or longer than the frame")
            }
            payload = payload.dropFirst(used)
            self = .serverDeniesAuth(reason: String(decoding: try take(Int(length)), as: UTF8.self)); try end()
        case 4: self = .sendDatagram(destination: try take(32), ecn: try ecn(), data: Array(payload))
        case 6: self = .receivedDatagram(source: try take(32), ecn: try ecn(), data: Array(payload))
        case 5, 7:
            let key = try take(32), ecn = try ecn(), size = try u16()
            guard size > 0 else { throw malformed("segment size 0") }
            self = type == 5
                ? .sendDatagramBatch(destination: key, ecn: ecn, segmentSize: size, data: Array(payload))
                : .receivedDatagramBatch(source: key, ecn: ecn, segmentSize: size, data: Array(payload))
        case 8: self = .endpointGone(try take(32)); try end()
        case 9: self = .ping(try take(8)); try end()
        case 10: self = .pong(try take(8)); try end()
        case 11: self = .health(String(decoding: payload, as: UTF8.self))
        case 12: self = .restarting(reconnectInMilliseconds: try u32(), tryForMilliseconds: try u32()); try end()
        case 13:
            guard let (code, used) = QUICVarint.decode(payload), used == payload.count else { throw malformed("not one varint status code") }
            self = .status(code)
        default: self = .unknown(type: type, payload: Array(payload))
        }
    }
}
