import ArgumentParser
import Logging
import NIOCore
import NIOPosix
import PeerpoolCommandSupport
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolQUIC

/// `peerpool listen`'s side of iroh discovery: publishing each served identity's record to a
/// pkarr relay, so that iroh and peerpool peers can dial it by its ID52 alone.
struct PublishOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Publish each identity's addresses as a signed pkarr packet to this relay (iroh's is https://dns.iroh.link/pkarr), at start, then every 5 minutes. Default: off.",
        valueName: "url"))
    var pkarrRelay: String?

    @Option(help: ArgumentHelp(
        "Address to publish instead of the socket's own; repeat for more. Default: the bound address, or every interface address when bound to 0.0.0.0 or [::].",
        valueName: "host:port"))
    var publishAddress: [String] = []

    func validate() throws {
        if !publishAddress.isEmpty, pkarrRelay == nil { throw ValidationError("--publish-address needs --pkarr-relay") }
        for text in publishAddress where IrohEndpointRecord.socketAddress(Substring(text)) == nil {
            throw ValidationError("--publish-address \(text) is not ip:port (IPv6 as [ip]:port)")
        }
        if let pkarrRelay { _ = try Self.relayClient(pkarrRelay) }
    }

    /// One publisher per identity (`nil` without `--pkarr-relay`); each publishes the addresses of
    /// the endpoint that serves it.
    func publishers(for keys: [SecretKey], on endpoints: [QUICEndpoint], logger: Logger) throws -> [PkarrPublisher] {
        guard let pkarrRelay else { return [] }
        let relay = try Self.relayClient(pkarrRelay)
        let given = publishAddress.compactMap { IrohEndpointRecord.socketAddress(Substring($0)) }
        return keys.enumerated().map { index, key in
            let endpoint = endpoints.count == keys.count ? endpoints[index] : endpoints[0]
            let addresses = given.isEmpty ? Self.reachableAddresses(of: endpoint.localAddress) : given
            return PkarrPublisher(
                secretKey: key, record: IrohEndpointRecord(peer: key.id52, addresses: addresses), relay: relay, logger: logger)
        }
    }

    private static func relayClient(_ url: String) throws -> PkarrRelayClient {
        do {
            return try PkarrRelayClient(relayURL: url)
        } catch {
            throw ValidationError("--pkarr-relay \(url): \(error.message)")
        }
    }

    /// `bound` itself, or for a wildcard socket every interface address of a family it serves,
    /// with its port (loopback only when there is nothing else, as in a test's namespace).
    static func reachableAddresses(of bound: SocketAddress) -> [SocketAddress] {
        guard let port = bound.port, let ip = bound.ipAddress, ip == "0.0.0.0" || ip == "::" else { return [bound] }
        let devices = (try? System.enumerateDevices()) ?? []
        var found: [SocketAddress] = []
        var loopback: [SocketAddress] = []
        for device in devices {
            guard var address = device.address, let text = address.ipAddress else { continue }
            // An IPv4-only socket cannot answer on IPv6; a dual-stack one answers on both.
            if ip == "0.0.0.0", address.protocol != .inet { continue }
            if text.hasPrefix("fe80:") { continue }  // link-local needs a scope id iroh does not publish
            address.port = port
            if text == "127.0.0.1" || text == "::1" { loopback.append(address) } else { found.append(address) }
        }
        return Array((found.isEmpty ? loopback : found).prefix(IrohEndpointRecord.maximumAddresses))
    }
}
