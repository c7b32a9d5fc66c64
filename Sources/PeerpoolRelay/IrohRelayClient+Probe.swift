import AsyncHTTPClient
import NIOCore

extension IrohRelayClient {
    /// How long `GET <url>/ping` takes to answer 2xx: iroh's way of choosing the nearest relay.
    /// Uses AsyncHTTPClient's shared client (its own event loops). Throws ``RelayError``:
    /// `invalid_relay_url`, or `relay_probe_failed` with the status or the connection error.
    public static func probe(url: String, timeout: Duration = .seconds(5)) async throws -> Duration {
        let relay = try RelayURL(parsing: url)
        let request = HTTPClientRequest(url: "\(relay.usesTLS ? "https" : "http")://\(relay.hostHeaderWithPort)/ping")
        let start = ContinuousClock.now
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: TimeAmount(timeout))
            _ = try await response.body.collect(upTo: 4096)
        } catch {
            throw RelayError(.relayProbeFailed, "GET \(relay)/ping failed: \(error)", underlying: error)
        }
        guard (200..<300).contains(response.status.code) else {
            throw RelayError(.relayProbeFailed, "GET \(relay)/ping answered HTTP \(response.status.code), not 2xx")
        }
        return ContinuousClock.now - start
    }
}
