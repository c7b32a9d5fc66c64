import ArgumentParser
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC

/// The README's first command: a listener and a dialer on loopback, one authenticated handshake
/// and one stream, with what happened printed.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start a listener on loopback, connect to it, and move bytes over one stream."
    )

    @Option(help: "Bytes to send through the stream and receive back.")
    var bytes: Int = 8 * 1024 * 1024

    static func hostPort(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return address.protocol == .inet6 ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    func run() async throws {
        let serverKey = SecretKey.generate()
        let clientKey = SecretKey.generate()
        let server = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [serverKey])
        let client = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [clientKey], acceptIncoming: false)
        print("listener  \(serverKey.id52) at \(Self.hostPort(server.localAddress))")
        print("dialer    \(clientKey.id52) at \(Self.hostPort(client.localAddress))")

        // The listener echoes every stream back.
        let listener = Task {
            for await connection in server.incomingConnections {
                print("listener  accepted \(connection.remoteID52)")
                Task {
                    while let stream = try? await connection.acceptStream() {
                        Task {
                            while let chunk = try await stream.read() { try await stream.write(chunk) }
                            try await stream.finish()
                        }
                    }
                }
            }
        }

        let clock = ContinuousClock()
        let start = clock.now
        let connection = try await client.connect(to: serverKey.id52, at: server.localAddress)
        let handshake = clock.now - start
        print("handshake \(handshake.formatted(.units(allowed: [.milliseconds], fractionalPart: .show(length: 2)))) to \(connection.remoteID52)")

        let stream = try await connection.openStream()
        let transferStart = clock.now
        async let echoed: Int = {
            var total = 0
            while let chunk = try await stream.read() { total += chunk.readableBytes }
            return total
        }()
        let block = ByteBuffer(repeating: 0x61, count: 64 * 1024)
        var sent = 0
        while sent < bytes {
            let slice = block.getSlice(at: 0, length: min(block.readableBytes, bytes - sent))!
            try await stream.write(slice)
            sent += slice.readableBytes
        }
        try await stream.finish()
        let received = try await echoed
        let elapsed = clock.now - transferStart
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("stream    sent \(sent) bytes, received \(received) back in \(String(format: "%.3f", seconds)) s")
        await connection.close()
        await client.close()
        await server.close()
        listener.cancel()
        guard received == sent else { throw ValidationError("echo returned \(received) of \(sent) bytes") }
    }
}
