import Foundation
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// Interoperability with aioquic, an independent QUIC and TLS 1.3 stack, in both directions.
///
/// The Python side (`Interop/aioquic_peer.py`, run from `.venv-test/`, which
/// `deploy/setup.sh --test` creates) gets an identity made here, so each test knows the ID52 it
/// must see and checks that the key each side proved is the one its ID52 names.
@Suite(.timeLimit(.minutes(3)))
struct AioquicInteropTests {
    static let line = "hello from aioquic\n"

    @Test(.timeLimit(.minutes(3)))
    func aioquicClient_connectsToOurEndpoint_andEchoes() async throws {
        let serverKey = SecretKey.generate()
        let clientKey = SecretKey.generate()
        try await withEndpoint(identities: [serverKey]) { endpoint in
            let port = try #require(endpoint.localAddress.port)
            let python = try PythonPeer.client(identity: clientKey, serverName: serverKey.id52, port: port, message: Self.line)
            defer { python.stop() }

            // The connection, or nil as soon as the client gave up (it exits at once on failure).
            let accepted = await withTaskGroup(of: QUICConnection?.self) { group in
                group.addTask { await nextIncoming(endpoint, timeout: .seconds(60)) }
                group.addTask {
                    _ = await python.exit(within: .seconds(60))
                    return nil
                }
                let first = await group.next() ?? nil
                group.cancelAll()
                return first
            }
            guard let connection = accepted else {
                Issue.record("no connection arrived from the aioquic client\n\(await python.finalTranscript())")
                return
            }
            #expect(connection.remoteID52 == clientKey.id52, "the client's certificate key, as we saw it")
            #expect(await connection.peerCertificateType == .x509, "aioquic negotiates no certificate type: the X.509 fallback")
            #expect(connection.localID52 == serverKey.id52)

            let echoed = try await withDeadline(.seconds(60)) {
                let stream = try await connection.acceptStream()
                var total = 0
                while let chunk = try await stream.read() {
                    total += chunk.readableBytes
                    try await stream.write(chunk)
                }
                try await stream.finish()
                return total
            }
            #expect(echoed == Self.line.utf8.count, "\(python.transcript)")

            let serverKeyHex = try await python.value(of: "SERVERKEY")
            #expect(serverKeyHex == hex(serverKey.id52.publicKeyBytes), "the key aioquic saw in our certificate")
            let echo = try await python.value(of: "ECHO")
            #expect(try JSONDecoder().decode(String.self, from: Data(echo.utf8)) == Self.line)
            #expect(await python.exit() == 0, "\(python.transcript)")
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func ourClient_connectsToAioquicServer_andEchoes() async throws {
        let serverKey = SecretKey.generate()
        let clientKey = SecretKey.generate()
        let (python, port) = try await PythonPeer.server(identity: serverKey)
        defer { python.stop() }
        try await withEndpoint(identities: [clientKey], acceptIncoming: false) { endpoint in
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            let connection = try await endpoint.connect(to: serverKey.id52, at: address)
            #expect(connection.remoteID52 == serverKey.id52)
            #expect(connection.localID52 == clientKey.id52)

            let sent = "hello from peerpool \(clientKey.id52)\n"
            let received = try await withDeadline(.seconds(60)) {
                let stream = try await connection.openStream()
                try await stream.write(Array(sent.utf8))
                try await stream.finish()
                return String(buffer: try await stream.readToEnd(limit: 4096))
            }
            #expect(received == sent, "\(python.transcript)")

            #expect(try await python.value(of: "SNI") == "\(serverKey.id52).iroh.invalid", "we name the server's ID52 in SNI, as iroh does")
            #expect(await connection.peerCertificateType == .x509, "aioquic negotiates no certificate type: the X.509 fallback")
            #expect(try await python.value(of: "PEER") == hex(clientKey.id52.publicKeyBytes), "the key we proved to aioquic")
            await connection.close()
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func ourClient_refusesAioquicServer_withWrongKey() async throws {
        let serverKey = SecretKey.generate()
        let expected = SecretKey.generate().id52
        let (python, port) = try await PythonPeer.server(identity: serverKey)
        defer { python.stop() }
        try await withEndpoint(identities: [SecretKey.generate()], acceptIncoming: false) { endpoint in
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            let error = await #expect(throws: QUICError.self) {
                _ = try await endpoint.connect(to: expected, at: address)
            }
            #expect(error?.code == .wrongPeerKey, "\(String(describing: error))")
            #expect(error?.message.contains(expected.description) == true, "names the ID52 we dialled: \(String(describing: error))")
            #expect(error?.message.contains(serverKey.id52.description) == true, "names the key that answered: \(String(describing: error))")
            #expect(await endpoint.connectionCount == 0)
        }
    }
}

extension AioquicInteropTests {
    @Test(.timeLimit(.minutes(3)))
    func ourClient_withoutX509Fallback_isRefusedByAioquic() async throws {
        let serverKey = SecretKey.generate()
        let (python, port) = try await PythonPeer.server(identity: serverKey)
        defer { python.stop() }
        try await withEndpoint(
            identities: [SecretKey.generate()], acceptIncoming: false,
            configuration: testConfiguration { $0.allowsX509Fallback = false }
        ) { endpoint in
            let address = try SocketAddress(ipAddress: "127.0.0.1", port: port)
            let error = await #expect(throws: QUICError.self) {
                _ = try await endpoint.connect(to: serverKey.id52, at: address)
            }
            #expect(error?.code == .handshakeFailed, "\(String(describing: error))")
        }
    }
}

private func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
