import Foundation
import PeerpoolIdentity
import PeerpoolTestSupport

/// `Interop/iroh_peer.py` in a child process: a real iroh endpoint (n0's Python bindings) speaking
/// fastn-net's stream protocol, as a server (`startServer`) or a one-shot client (`runClient`).
/// The script's docstring lists its stdout lines.
///
/// Only ever started inside a loopback-only network namespace (`LoopbackNamespace`): iroh probes
/// the LAN gateway. `command` checks that before spawning, and the script checks it again.
/// Killed when released; a server also exits when our end of its stdin closes.
final class IrohPeer: Sendable {
    /// The server's UDP port on 127.0.0.1 and its ID52.
    let port: Int
    let id52: ID52
    /// The home relay the peer reported being online with (`RELAY`), if started with one.
    let relayURL: String?
    /// Every UDP port the server bound (`SOCKETS`: iroh adds a `[::]` socket of its own).
    let udpPorts: [Int]
    private let child: TestChild

    private init(port: Int, id52: ID52, relayURL: String? = nil, udpPorts: [Int] = [], child: TestChild) {
        self.port = port
        self.id52 = id52
        self.relayURL = relayURL
        self.udpPorts = udpPorts
        self.child = child
    }

    /// A server on 127.0.0.1, once it reported its port and ID52 and, with a home `relay`
    /// (`--relay`), once it is online with it. `dnsDiscovery`: n0's preset (DNS address lookup).
    static func startServer(
        secret: SecretKey? = nil, relay: String? = nil, dnsDiscovery: Bool = false, within timeout: Duration = .seconds(30)
    ) async throws -> IrohPeer {
        var arguments = ["server", "--timeout", "\(timeout.components.seconds)"]
        if let secret { arguments += ["--secret", hex(secret)] }
        if let relay { arguments += ["--relay", relay] }
        if dnsDiscovery { arguments.append("--dns-discovery") }
        let child = try TestChild(command(arguments))
        do {
            let fields = try await child.value(of: "READY", within: timeout).split(separator: " ")
            guard fields.count == 2, let port = Int(fields[0]), let id52 = try? ID52(parsing: String(fields[1])) else {
                throw IrohPeerError("iroh peer reported READY \(fields)\n\(child.transcript)")
            }
            let sockets = try await child.value(of: "SOCKETS", within: timeout).split(separator: " ")
            let udpPorts = sockets.compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
            let relayURL = relay == nil ? nil : try await child.value(of: "RELAY", within: timeout)
            return IrohPeer(port: port, id52: id52, relayURL: relayURL, udpPorts: udpPorts, child: child)
        } catch {
            await child.kill()
            throw error
        }
    }

    /// Runs a client dialling `peer` at 127.0.0.1:`port` to its end: its `status`, stdout
    /// `lines` and `transcript`. `arguments` are `--mode`, `--count`, `--bytes`, `--streams`,
    /// `--secret`. Throws, with the transcript, if it runs longer than `timeout` (and 10 s of
    /// slack); a non-zero exit is reported in the result, since refusals are expected in some
    /// tests.
    static func runClient(
        peer: ID52, port: Int, _ arguments: [String], within timeout: Duration = .seconds(60)
    ) async throws -> TestChild.Output {
        try await runClient(peer: peer, dialling: .address(port: port), arguments, within: timeout)
    }

    /// `runClient(peer:port:)` with any way of finding the peer (`Dial`).
    static func runClient(
        peer: ID52, dialling dial: Dial, _ arguments: [String], within timeout: Duration = .seconds(60)
    ) async throws -> TestChild.Output {
        let output = try await TestChild.run(
            command(["client", "--peer", peer.description, "--timeout", "\(timeout.components.seconds)"] + dial.arguments + arguments),
            within: timeout + .seconds(10))
        guard !output.timedOut else {
            throw IrohPeerError("iroh client \(arguments) still running after \(timeout)\n\(output.transcript)")
        }
        return output
    }

    /// A client dialling `peer` at 127.0.0.1:`port` that runs on (`--mode hold`), once it
    /// reported its ID52; `port` is then the port it dialled. Killed when released or by `kill()`.
    static func startClient(peer: ID52, port: Int, _ arguments: [String], lifetime: Duration = .seconds(120)) async throws -> IrohPeer {
        let child = try TestChild(command([
            "client", "--peer", peer.description, "--addr", "127.0.0.1:\(port)", "--timeout", "\(lifetime.components.seconds)",
        ] + arguments))
        do {
            let id52 = try ID52(parsing: try await child.value(of: "ID", within: .seconds(30)))
            return IrohPeer(port: port, id52: id52, child: child)
        } catch {
            await child.kill()
            throw error
        }
    }

    /// The rest of the next unread stdout line starting with `keyword` and a space; other lines
    /// stay unread.
    func value(of keyword: String, within timeout: Duration = .seconds(15)) async throws -> String {
        try await child.value(of: keyword, within: timeout)
    }

    /// Unread stdout lines starting with `keyword` and a space, without it; consumed.
    func values(of keyword: String) -> [String] {
        let prefix = keyword + " "
        return child.takeUnread { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// SIGKILL: the peer vanishes without a word.
    func kill() async {
        await child.kill()
    }

    var transcript: String { child.transcript }

    /// The script with `arguments`, niced a little (the rest of the suite runs alongside on 2
    /// cores); only inside the loopback-only namespace.
    private static func command(_ arguments: [String]) throws -> TestChild.Command {
        try LoopbackNamespace.requireInside()
        var command = try PythonInterop.command("iroh peer", script: "Tests/PeerpoolPoolTests/Interop/iroh_peer.py", arguments: arguments)
        command.arguments = ["-n", "5", command.executable.path] + command.arguments
        command.executable = URL(fileURLWithPath: "/usr/bin/nice")
        command.transcriptLimit = 400
        return command
    }

    private static func hex(_ key: SecretKey) -> String {
        key.privateKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
    }
}

extension IrohPeer {
    /// How an iroh client finds the peer it dials, as `iroh_peer.py client` arguments.
    struct Dial: Sendable {
        let arguments: [String]

        /// At 127.0.0.1:`port`, no relay, no lookup.
        static func address(port: Int) -> Dial { Dial(arguments: ["--addr", "127.0.0.1:\(port)"]) }

        /// Through the relay at `url` alone (also the client's home relay): no address is given.
        static func relay(_ url: String) -> Dial { Dial(arguments: ["--relay", url, "--relay-url", url]) }

        /// By ID alone: iroh looks up `_iroh.<z32>.dns.iroh.link` through the system resolver;
        /// `homeRelay` lets the client reach a peer that publishes only a relay.
        static func dns(homeRelay: String? = nil) -> Dial {
            Dial(arguments: ["--dns-discovery"] + (homeRelay.map { ["--relay", $0] } ?? []))
        }
    }
}

struct IrohPeerError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
