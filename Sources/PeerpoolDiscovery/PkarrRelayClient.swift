import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import PeerpoolIdentity

/// The HTTP side of a pkarr relay (pkarr's relay API, which iroh's `dns.iroh.link/pkarr` serves):
/// `PUT <relay>/<z32>` stores a signed packet (the body is the packet without its key),
/// `GET <relay>/<z32>` returns it. Every packet read is verified against the key asked for.
public struct PkarrRelayClient: Sendable {
    /// The relay's base URL, e.g. `https://dns.iroh.link/pkarr`.
    public let relayURL: String
    public let timeout: Duration
    private let client: HTTPClient

    public init(relayURL: String, timeout: Duration = .seconds(10), client: HTTPClient = .shared) throws(DiscoveryError) {
        guard relayURL.hasPrefix("http://") || relayURL.hasPrefix("https://"), relayURL.count <= 1000 else {
            throw DiscoveryError(.pkarrRelayFailed, "the pkarr relay \"\(relayURL.prefix(100))\" is not an http or https URL")
        }
        self.relayURL = relayURL.hasSuffix("/") ? String(relayURL.dropLast()) : relayURL
        self.timeout = timeout
        self.client = client
    }

    public func url(of peer: ID52) -> String { "\(relayURL)/\(ZBase32.encode(peer))" }

    private var timeAmount: TimeAmount {
        .nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000 + Int64(timeout.components.attoseconds / 1_000_000_000))
    }

    /// Stores `packet`. Throws `pkarr_relay_refused` (status and the relay's words) or
    /// `pkarr_relay_failed`.
    public func put(_ packet: PkarrSignedPacket) async throws(DiscoveryError) {
        var request = HTTPClientRequest(url: url(of: packet.peer))
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/pkarr.org/relays#payload")
        request.body = .bytes(ByteBuffer(bytes: packet.relayPayload))
        let (status, body) = try await execute(request, peer: packet.peer)
        guard (200..<300).contains(status.code) else {
            throw DiscoveryError(.pkarrRelayRefused, "pkarr relay \(relayURL) refused the packet for \(packet.peer): \(status.code) \(status.reasonPhrase) \(body)")
        }
    }

    /// The relay's packet for `peer`, verified; `nil` when it has none (404).
    public func get(_ peer: ID52) async throws(DiscoveryError) -> PkarrSignedPacket? {
        let (status, body, bytes) = try await executeCollecting(HTTPClientRequest(url: url(of: peer)), peer: peer)
        if status == .notFound { return nil }
        guard status == .ok else {
            throw DiscoveryError(.pkarrRelayRefused, "pkarr relay \(relayURL) answered GET for \(peer) with \(status.code) \(status.reasonPhrase) \(body)")
        }
        return try PkarrSignedPacket(relayPayload: bytes, peer: peer)
    }

    private func execute(_ request: HTTPClientRequest, peer: ID52) async throws(DiscoveryError) -> (HTTPResponseStatus, String) {
        let (status, text, _) = try await executeCollecting(request, peer: peer)
        return (status, text)
    }

    /// At most a full pkarr packet (72 + 1000 bytes) of body is read; more is an error.
    private func executeCollecting(_ request: HTTPClientRequest, peer: ID52) async throws(DiscoveryError) -> (HTTPResponseStatus, String, [UInt8]) {
        do {
            let response = try await client.execute(request, timeout: timeAmount)
            let body = try await response.body.collect(upTo: 72 + PkarrSignedPacket.maximumDNSPacketSize)
            let bytes = Array(body.readableBytesView)
            let text = String(decoding: bytes.prefix(200), as: UTF8.self).filter { !$0.isNewline }
            return (response.status, text, bytes)
        } catch {
            throw DiscoveryError(.pkarrRelayFailed, "pkarr relay \(relayURL) for \(peer): \(error)")
        }
    }
}
