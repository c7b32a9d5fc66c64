import PeerpoolCommandSupport
import ArgumentParser
import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `peerpool-bench peer`: a long-running peer for benchmarks and for tests in other processes.
///
/// Prints `READY <id52> <host> <port>` once, then serves every stream of every connection
/// (see ``BenchRequest``) until SIGTERM, SIGINT or the end of its standard input. The last one
/// means a parent that dies, even by SIGKILL, takes this process with it.
struct BenchPeerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "peer",
        abstract: "Serve SOURCE/SINK/ECHO streams until SIGTERM or the end of standard input.",
        discussion: """
            Prints one line on standard output, `READY <id52> <host> <port>`, once it listens. \
            Each stream opens with a request line: `SOURCE <n>` (we send n bytes), `SINK` (we \
            count what you send and answer the count), `ECHO` (we send back what you send). \
            Standard input must stay open: the peer exits when it reads EOF there, so run it \
            with `</dev/null` and it stops at once.
            """
    )

    @Option(help: ArgumentHelp("UDP address to listen on; port 0 picks a free port.", valueName: "host:port"))
    var address = "127.0.0.1:0"

    @Option(help: ArgumentHelp("Secret key file to serve as (default: a new identity).", valueName: "path"))
    var keyFile: String?

    func validate() throws {
        _ = try HostPort.parse(address)
    }

    func run() async throws {
        let (host, port) = try HostPort.parse(address)
        let key = try keyFile.map { try SecretKey.load(fromFile: $0) } ?? SecretKey.generate()
        let endpoint = try await QUICEndpoint.bind(host: host, port: port, identities: [key], acceptIncoming: true)
        let (stops, stop) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingOldest(1))
        let signalSources = StopRequests.watchSignals(stop)
        StopRequests.watchStandardInput(stop)

        // One write(2): the line reaches a parent reading a pipe at once, never sitting in a buffer.
        let readyHost = endpoint.localAddress.ipAddress ?? host
        let readyPort = endpoint.localAddress.port ?? port
        try FileHandle.standardOutput.write(contentsOf: Data("READY \(key.id52) \(readyHost) \(readyPort)\n".utf8))

        await withDiscardingTaskGroup { group in
            group.addTask { await Self.serve(endpoint) }
            for await _ in stops { break }
            // Ends every connection and with them `serve`.
            await StopRequests.closeWithWatchdog(endpoint, seconds: 3)
        }
        withExtendedLifetime(signalSources) {}
    }
}
