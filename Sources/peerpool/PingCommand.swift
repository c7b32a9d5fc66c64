import ArgumentParser
import PeerpoolCommandSupport
import Foundation
import NIOCore
import PeerpoolDiscovery
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC

/// `peerpool ping`: fastn's `Ping` to one peer through a `PeerPool`, with round trips printed.
///
/// Errors are thrown, not printed: ArgumentParser prints a `PoolError` as
/// "Error: connect_failed: ..." and exits non-zero.
struct PingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Ping a peer over an authenticated QUIC connection.",
        discussion: """
            Prints `pong from <id52>: <ms> ms` per ping. The first one connects too (handshake \
            included) and says so; the others reuse the connection.
            """
    )

    @Argument(help: ArgumentHelp(
        "The peer: its ID52 and where it listens (IPv6 as id52@[::1]:port), or its ID52 alone with --dns-origin or --pkarr-relay.",
        valueName: "id52@host:port"))
    var peer: String

    @Option(help: ArgumentHelp("Pings to send.", valueName: "n"))
    var count = 1

    @Option(help: ArgumentHelp("Seconds between pings.", valueName: "seconds"))
    var interval = 1.0

    @OptionGroup var dial: DialOptions

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1") }
        guard interval >= 0, interval <= DialOptions.longestWait else {
            throw ValidationError("--interval must be between 0 and \(Int(DialOptions.longestWait)) seconds (a day)")
        }
    }

    func run() async throws {
        let (count, interval) = (count, interval)
        try await dial.withPool(to: peer) { pool, address in
            let clock = ContinuousClock()
            for number in 0..<count {
                if number > 0 { try await Task.sleep(for: .seconds(interval)) }
                let start = clock.now
                let roundTrip = try await pool.ping(address)
                // The first request connects inside the pool, which times only the ping itself.
                let elapsed = number == 0 ? clock.now - start : roundTrip
                let line = "pong from \(address.id52): \(Self.milliseconds(elapsed)) ms" + (number == 0 ? " (connect + ping)" : "")
                try FileHandle.standardOutput.write(contentsOf: Data((line + "\n").utf8))
            }
        }
    }

    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.3f", Double(seconds) * 1e3 + Double(attoseconds) / 1e15)
    }
}

/// Options of the commands that dial one peer (`ping`, `stream`), and the pool they dial with.
struct DialOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Secret key file to connect as (default: the key in PEERPOOL_SECRET_KEY, else a new identity).", valueName: "path"))
    var keyFile: String?

    @Option(help: ArgumentHelp(
        "Seconds to wait for the connection (handshake included), and again for each answer.",
        valueName: "seconds"))
    var timeout = 10.0

    @Option(help: ArgumentHelp(
        "Find a peer given by ID52 alone as iroh does: DNS TXT _iroh.<z-base-32 key>.<origin> (iroh's is dns.iroh.link). Default: off.",
        valueName: "origin"))
    var dnsOrigin: String?

    @Option(help: ArgumentHelp("Name server for --dns-origin (default: those of /etc/resolv.conf).", valueName: "ip:port"))
    var dnsServer: String?

    @Option(help: ArgumentHelp(
        "Find a peer given by ID52 alone in the signed packet a pkarr relay holds for it (GET <url>/<z-base-32 key>; iroh's is https://dns.iroh.link/pkarr). Asked after --dns-origin. Default: off.",
        valueName: "url"))
    var pkarrRelay: String?

    func validate() throws {
        // Checked before any conversion: a Duration of 1e300 seconds traps.
        guard timeout >= 0.001, timeout <= Self.longestWait else {
            throw ValidationError("--timeout must be between 0.001 and \(Int(Self.longestWait)) seconds (a day)")
        }
        if dnsServer != nil, dnsOrigin == nil { throw ValidationError("--dns-server needs --dns-origin") }
    }

    /// The longest `--timeout` or `--interval`: a day.
    static let longestWait = 86_400.0

    /// Whether a peer given by ID52 alone can be found.
    var discovers: Bool { dnsOrigin != nil || pkarrRelay != nil }

    /// DNS discovery with `--dns-origin`, then pkarr with `--pkarr-relay`; else no resolver (the
    /// address must come with the peer).
    func resolver() throws -> any AddressResolver {
        var resolvers: [any AddressResolver] = []
        if let dnsOrigin { resolvers.append(try dnsResolver(origin: dnsOrigin)) }
        if let pkarrRelay {
            do {
                let client = try PkarrRelayClient(relayURL: pkarrRelay, timeout: .seconds(min(timeout, 10)))
                resolvers.append(PkarrAddressResolver(PkarrResolver(relay: client)))
            } catch {
                throw ValidationError("--pkarr-relay \(pkarrRelay): \(error.message)")
            }
        }
        return resolvers.isEmpty ? AddressBook() : ChainedResolver(resolvers)
    }

    private func dnsResolver(origin dnsOrigin: String) throws -> DNSAddressResolver {
        var nameServers: [SocketAddress]?
        if let dnsServer {
            guard let server = IrohEndpointRecord.socketAddress(Substring(dnsServer)) else {
                throw ValidationError("--dns-server \(dnsServer) is not ip:port (IPv6 as [ip]:port)")
            }
            nameServers = [server]
        }
        var configuration = DNSDiscoveryConfiguration(origin: dnsOrigin, nameServers: nameServers)
        configuration.queryTimeout = .seconds(min(timeout, 5))
        return DNSAddressResolver(try IrohDNSResolver(configuration: configuration))
    }

    /// Runs `body` with a pool on a fresh dial-only endpoint and the parsed `target`; closes both
    /// afterwards, whether `body` returned or threw.
    func withPool<T>(to target: String, _ body: (PeerPool, PeerAddress) async throws -> T) async throws -> T {
        let address = try PeerAddress(parsing: target)
        if address.socketAddress == nil, !discovers {
            throw ValidationError(
                "\(target) has no address: give it as id52@host:port, or find it by ID52 with --dns-origin or --pkarr-relay")
        }
        let key = try CommandIdentities.configured(keyFiles: keyFile.map { [$0] } ?? []).first ?? SecretKey.generate()
        let limit = Duration.seconds(timeout)
        var quic = QUICConfiguration()
        // A backstop beyond the connect timeout, so that the timeout the user gave is the one named.
        quic.handshakeTimeout = min(.seconds(Self.longestWait), limit * 1.25 + .seconds(1))
        // A wildcard socket of the peer's family: the kernel picks the source address. A peer
        // found through DNS may have either family: a dual-stack socket.
        let host = address.socketAddress == nil && discovers || address.socketAddress?.protocol == .inet6 ? "::" : "0.0.0.0"
        let endpoint = try await QUICEndpoint.bind(
            host: host, port: 0, identities: [key], acceptIncoming: false, configuration: quic)
        var configuration = PoolConfiguration()
        configuration.connectTimeout = limit
        configuration.ackTimeout = limit
        // A peer that discovery names only by its relay is dialled through that relay.
        let pool = PeerPool(
            endpoint: endpoint, resolver: try resolver(), configuration: configuration,
            relays: .iroh(keys: [key], connectTimeout: limit))
        let result: Result<T, any Error>
        do {
            result = .success(try await body(pool, address))
        } catch {
            result = .failure(error)
        }
        await pool.shutdown(gracePeriod: .zero)
        await endpoint.close(code: 0)
        return try result.get()
    }
}
