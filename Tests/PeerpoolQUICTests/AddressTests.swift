import NIOCore
import PeerpoolIdentity
@testable import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// One bad address must fail one connect, never the socket that every other connection uses
/// (SwiftNIO closes a datagram channel on most send errors).
@Suite(.timeLimit(.minutes(3)))
struct AddressTests {
    /// Addresses an IPv4 socket cannot send to, each refused before a packet leaves.
    static let unsendableFromIPv4 = [
        "[::1]:4433", "255.255.255.255:1", "224.0.0.1:4433", "0.0.0.0:4433", "127.0.0.1:0",
    ]

    @Test(arguments: unsendableFromIPv4)
    func unsendableAddress_failsThatConnect_andTheSocketServesOn(_ text: String) async throws {
        try await withServer { server, keys in
            try await withClient { client, _ in
                let echo = echoServer(server)
                defer { echo.cancel() }
                let address = try #require(Self.parse(text))

                let error = await #expect(throws: QUICError.self) {
                    _ = try await client.connect(to: keys[0].id52, at: address)
                }
                #expect(error?.code == .addressUnreachable, "\(String(describing: error))")
                #expect(error?.message.contains("cannot send to") == true, "\(String(describing: error))")

                // The same socket still connects and carries a stream.
                let connection = try await client.connect(to: keys[0].id52, at: server.localAddress)
                let stream = try await connection.openStream()
                try await stream.write(Array("still here".utf8))
                try await stream.finish()
                #expect(String(buffer: try await stream.readToEnd(limit: 64)) == "still here")
            }
        }
    }

    @Test func dualStackSocket_reachesIPv4_IPv6_andMappedPeers() async throws {
        let key4 = SecretKey.generate()
        let key6 = SecretKey.generate()
        let server4 = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: [key4], configuration: testConfiguration())
        let server6: QUICEndpoint
        do {
            server6 = try await QUICEndpoint.bind(host: "::1", port: 0, identities: [key6], configuration: testConfiguration())
        } catch {
            await server4.close()
            Issue.record("this host has no IPv6 loopback: \(error)")
            return
        }
        let clientKey = SecretKey.generate()
        let client = try await QUICEndpoint.bind(
            host: "::", port: 0, identities: [clientKey], acceptIncoming: false, configuration: testConfiguration())
        let echoes = [echoServer(server4), echoServer(server6)]
        try await withCleanup {
            #expect(client.isDualStack)

            let port4 = try #require(server4.localAddress.port)
            let mapped = try SocketAddress(ipAddress: "::ffff:127.0.0.1", port: port4)
            for (peer, address) in [(key4.id52, server4.localAddress), (key6.id52, server6.localAddress), (key4.id52, mapped)] {
                let connection = try await client.connect(to: peer, at: address)
                // Connections see plain IPv4, whatever form the caller gave.
                if address.protocol == .inet6, peer == key4.id52 {
                    #expect(connection.remoteAddress == server4.localAddress)
                }
                let stream = try await connection.openStream()
                try await stream.write(Array("hello \(address)".utf8))
                try await stream.finish()
                #expect(String(buffer: try await stream.readToEnd(limit: 256)) == "hello \(address)")
                await connection.close()
            }
        } cleanup: {
            echoes.forEach { $0.cancel() }
            await client.close()
            await server4.close()
            await server6.close()
        }
    }

    @Test func socketClosedUnderTheEndpoint_failsItsConnections_andReportsTheCause() async throws {
        try await ConnectedPair.with { pair in
            let reported = AsyncStream<String>.makeStream()
            pair.client.whenClosedOnItsOwn { cause in
                reported.continuation.yield(cause)
                reported.continuation.finish()
            }
            // What SwiftNIO does after an unrecoverable send error: the channel closes.
            try await pair.client.core.channel.close()

            var causes = reported.stream.makeAsyncIterator()
            let cause = try #require(await causes.next())
            #expect(cause.contains("UDP socket"), "\(cause)")
            let reason = await pair.connection.closed()
            #expect("\(reason)".contains("UDP socket"), "\(reason)")
            let error = await #expect(throws: QUICError.self) {
                _ = try await pair.client.connect(to: pair.serverSide.localID52, at: pair.server.localAddress)
            }
            #expect(error?.code == .endpointClosed)
            #expect(error?.message.contains("UDP socket") == true)
        }
    }

    @Test func errorCodesBeyond62Bits_neverReachNgtcp2() async throws {
        try await ConnectedPair.with { pair in
            let stream = try await pair.connection.openStream()
            try await stream.write(Array("x".utf8))
            let peerStream = try await pair.serverSide.acceptStream()
            // ngtcp2 asserts on codes of 2^62 and more: the process would abort here.
            await stream.reset(code: 1 << 62)
            await stream.stopSending(code: .max)
            let error = await #expect(throws: QUICError.self) {
                while try await peerStream.read() != nil {}
            }
            #expect(error?.message.contains("code \(QUICErrorCodeRange.max)") == true, "\(String(describing: error))")

            await pair.connection.close(code: .max, reason: "too big")
            #expect(await pair.serverSide.closed() == .peerClosed(applicationCode: QUICErrorCodeRange.max, reason: "too big"))
        }
    }

    static func parse(_ text: String) -> SocketAddress? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]) else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("[") { host = host.dropFirst().dropLast() }
        return try? SocketAddress(ipAddress: String(host), port: port)
    }
}

/// Configuration values that would trap converting to ngtcp2's types, or break QUIC's rules, are
/// refused at bind with the setting's name.
@Suite struct ConfigurationValidationTests {
    static let bad: [(String, @Sendable (inout QUICConfiguration) -> Void)] = [
        ("maxConcurrentBidirectionalStreams", { $0.maxConcurrentBidirectionalStreams = -1 }),
        ("initialStreamReceiveWindow", { $0.initialStreamReceiveWindow = -5 }),
        ("maxStreamReceiveWindow", { $0.maxStreamReceiveWindow = 1 }),
        ("maxUDPPayloadSize", { $0.maxUDPPayloadSize = 1000 }),
        ("idleTimeout", { $0.idleTimeout = .seconds(-1) }),
        ("keepAliveInterval", { $0.keepAliveInterval = .zero }),
        ("alpn", { $0.alpn = "" }),
        ("socketBufferSize", { $0.socketBufferSize = -1 }),
    ]

    @Test(arguments: 0..<bad.count)
    func outOfRangeValue_isRefusedAtBind_namingIt(_ index: Int) async throws {
        let (name, change) = Self.bad[index]
        var configuration = QUICConfiguration()
        change(&configuration)
        let error = await #expect(throws: QUICError.self) {
            let endpoint = try await QUICEndpoint.bind(
                host: "127.0.0.1", port: 0, identities: [SecretKey.generate()], configuration: configuration)
            await endpoint.close()
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains(name) == true, "\(String(describing: error))")
        #expect(throws: Never.self) { try QUICConfiguration().validate() }
    }
}
