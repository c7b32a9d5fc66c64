import NIOCore
import NIOHTTP1
import NIOWebSocket
import PeerpoolDiscovery

/// The outcome of `GET /relay`: switched to a WebSocket, or answered like any HTTP request.
enum RelayUpgradeResult: Sendable {
    case upgraded
    case notUpgraded
}

/// The HTTP/1.1 side of a relay connection: `GET /relay` asking for a WebSocket with iroh's
/// subprotocols (v2 preferred, v1 accepted), and the WebSocket pipeline once the relay agrees.
enum RelayUpgrade {
    /// What the client offers, in order of preference (iroh-relay's `http.rs`).
    static let subprotocols = "iroh-relay-v2, iroh-relay-v1"

    /// Adds the HTTP client handlers with the upgrade to `channel` (on its loop). `upgraded` runs
    /// once the WebSocket handlers are in place, with the subprotocol the relay chose (nil if it
    /// named none: relays before v2 may not); it adds the relay's own handler.
    static func configure(
        _ channel: any Channel, url: RelayURL,
        upgraded: @escaping @Sendable (any Channel, String?) throws -> Void
    ) throws -> EventLoopFuture<RelayUpgradeResult> {
        let upgrader = NIOTypedWebSocketClientUpgrader<RelayUpgradeResult>(
            // Room for the largest relay frame plus WebSocket framing.
            maxFrameSize: RelayFrame.maximumFrameSize + 16,
            upgradePipelineHandler: { channel, response in
                channel.eventLoop.makeCompletedFuture {
                    // A relay may split a message into fragments; the relay frame is the whole message.
                    try channel.pipeline.syncOperations.addHandler(NIOWebSocketFrameAggregator(
                        minNonFinalFragmentSize: 1, maxAccumulatedFrameCount: 256,
                        maxAccumulatedFrameSize: RelayFrame.maximumFrameSize))
                    try upgraded(channel, response.headers.first(name: "Sec-WebSocket-Protocol"))
                    return .upgraded
                }
            })
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: url.hostHeader)
        headers.add(name: "Sec-WebSocket-Protocol", value: subprotocols)
        headers.add(name: "Content-Length", value: "0")
        let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/relay", headers: headers)
        var configuration = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: .init(
            upgradeRequestHead: request, upgraders: [upgrader],
            notUpgradingCompletionHandler: { $0.eventLoop.makeSucceededFuture(.notUpgraded) }))
        // The relay's challenge may arrive in the same read as its 101 response: keep those bytes.
        configuration.leftOverBytesStrategy = .forwardBytes
        return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: configuration)
    }
}
