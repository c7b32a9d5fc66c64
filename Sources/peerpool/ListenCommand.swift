import PeerpoolCommandSupport
import ArgumentParser
import Foundation
import Logging
import PeerpoolIdentity
import PeerpoolPool
import PeerpoolQUIC
import PeerpoolRelay

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `peerpool listen`: one UDP socket answering as one or many identities, serving fastn's stream
/// protocol (`Ping`, plus the `Generic` services of ``ListenServices``) until told to stop.
struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Serve Ping and the echo, source and sink protocols as one or more identities.",
        discussion: """
            Standard output gets `LISTENING <host> <port> <n>` once the socket is bound, then the \
            ID52 of each of the n identities, one per line. Peers pick the identity they dial in \
            SNI, so all of them share the one address. Served protocols: "Ping"; \
            {"Generic":"echo"} (sends back what it gets); {"Generic":"source"} with an extra line \
            <n> (sends n bytes); {"Generic":"sink"} (counts what it gets and answers the count). \
            Runs until SIGINT or SIGTERM, or with --exit-on-stdin-eof until standard input ends. \
            With --socket-per-identity each identity gets a UDP socket of its own (port 0: any \
            free port each; else consecutive ports from the one given) and its line reads \
            <ID52>@<host>:<port>; <port> on the LISTENING line is the first socket's. That is \
            how to serve iroh 1.0.4 and later clients as several identities: they send no SNI.
            """
    )

    @Option(help: ArgumentHelp("UDP address to listen on; port 0 picks a free port.", valueName: "host:port"))
    var address = "127.0.0.1:0"

    @Option(
        name: .customLong("key-file"),
        help: ArgumentHelp("Secret key file of an identity to serve as; repeat for more. Without one, the key in PEERPOOL_SECRET_KEY (64 hex characters) when set.", valueName: "path"))
    var keyFiles: [String] = []

    @Option(help: ArgumentHelp(
        "Identities to serve (default: one per --key-file, else 1). New identities are generated past the key files.",
        valueName: "n"))
    var identities: Int?

    @Flag(help: "One UDP socket per identity, for clients that send no SNI (iroh 1.0.4 and later).")
    var socketPerIdentity = false

    @Flag(help: "Exit when standard input ends, so a parent that dies (even by SIGKILL) takes this process with it.")
    var exitOnStdinEof = false

    @Flag(help: "Log streams and their errors on standard error.")
    var verbose = false

    @OptionGroup(title: "Discovery") var publish: PublishOptions

    /// Connections (and accept backlog) above the identity count, so that every identity can
    /// be dialled at once and still leave room for more.
    static let connectionHeadroom = 1024

    func validate() throws {
        let (_, port) = try HostPort.parse(address)
        if let identities {
            guard identities >= 1, identities <= 100_000 else { throw ValidationError("--identities must be between 1 and 100000") }
            guard identities >= keyFiles.count else {
                throw ValidationError("--identities \(identities) is fewer than the \(keyFiles.count) key files given")
            }
        }
        // Consecutive ports from the one given: the last must still be a port.
        let sockets = identities ?? max(keyFiles.count, 1)
        if socketPerIdentity, port != 0, Int(port) + sockets - 1 > 65_535 {
            throw ValidationError(
                "--socket-per-identity needs \(sockets) consecutive ports from \(port), past 65535: start lower, or use port 0")
        }
    }

    func run() async throws {
        let (host, port) = try HostPort.parse(address)
        let keys = try loadIdentities()
        let logger = makeLogger()

        var quic = QUICConfiguration()
        quic.maxConnections = max(quic.maxConnections, keys.count + Self.connectionHeadroom)
        quic.acceptBacklog = max(quic.acceptBacklog, keys.count + Self.connectionHeadroom)
        // All identities behind one socket (chosen by SNI), or one socket each.
        let groups = socketPerIdentity ? keys.map { [$0] } : [keys]
        var endpoints: [QUICEndpoint] = []
        for (index, group) in groups.enumerated() {
            do {
                endpoints.append(try await QUICEndpoint.bind(
                    host: host, port: port == 0 ? 0 : port + index, identities: group, acceptIncoming: true,
                    configuration: quic, logger: logger))
            } catch {
                for endpoint in endpoints { await endpoint.close() }
                throw error
            }
        }
        let acceptors = endpoints.map { endpoint in
            StreamAcceptor(endpoint: endpoint, configuration: ListenServices.acceptorConfiguration, logger: logger) { incoming in
                await ListenServices.serve(incoming, logger: logger)
            }
        }
        let endpoint = endpoints[0]
        let relays: [IrohRelayClient]
        do {
            relays = try await publish.attachRelays(to: endpoints, keys: keys, logger: logger)
        } catch {
            for endpoint in endpoints { await endpoint.close() }
            throw error
        }
        let publishers = try publish.publishers(for: keys, on: endpoints, logger: logger)

        let (stops, stop) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(1))
        let signalSources = StopRequests.watchSignals(stop)
        if exitOnStdinEof { StopRequests.watchStandardInput(stop) }

        // One write(2) for the whole announcement, even with 10,000 identities: a parent reading
        // the pipe gets it at once, never stuck in a stdio buffer.
        var announcement = "LISTENING \(endpoint.localAddress.ipAddress ?? host) \(endpoint.localAddress.port ?? port) \(keys.count)\n"
        announcement.reserveCapacity(announcement.utf8.count + keys.count * 53)
        if socketPerIdentity {
            for (key, endpoint) in zip(keys, endpoints) {
                announcement += "\(key.id52)@\(endpoint.localAddress.ipAddress ?? host):\(endpoint.localAddress.port ?? 0)\n"
            }
        } else {
            for key in keys { announcement += "\(key.id52)\n" }
        }
        try FileHandle.standardOutput.write(contentsOf: Data(announcement.utf8))

        await withDiscardingTaskGroup { group in
            for acceptor in acceptors { group.addTask { try? await acceptor.run() } }
            let publishing = Task {
                await withDiscardingTaskGroup { publishing in
                    for publisher in publishers { publishing.addTask { try? await publisher.run() } }
                }
            }
            for await reason in stops {
                logger.debug("stopping", metadata: ["reason": "\(reason)"])
                break
            }
            publishing.cancel()
            await publishing.value
            for relay in relays { await relay.close() }
            // Ends every connection and the incoming sequence, and with them the acceptors.
            // One watchdog (it ends the process after 5 s) for all of them.
            await withDiscardingTaskGroup { closing in
                closing.addTask { await StopRequests.closeWithWatchdog(endpoint, seconds: 5) }
                for other in endpoints.dropFirst() { closing.addTask { await other.close(code: 0) } }
            }
        }
        withExtendedLifetime(signalSources) {}
    }

    /// The key files' identities, then generated ones up to `--identities`. Refuses a key given
    /// twice: two certificates for one name would make SNI ambiguous.
    private func loadIdentities() throws -> [SecretKey] {
        var keys = try CommandIdentities.configured(keyFiles: keyFiles)
        let total = max(identities ?? max(1, keys.count), keys.count)
        keys.reserveCapacity(total)
        while keys.count < total { keys.append(SecretKey.generate()) }
        return keys
    }

    private func makeLogger() -> Logger {
        guard verbose else { return Logger(label: "peerpool.listen", factory: { _ in SwiftLogNoOpLogHandler() }) }
        var logger = Logger(label: "peerpool.listen", factory: { StreamLogHandler.standardError(label: $0) })
        logger.logLevel = .debug
        return logger
    }
}
