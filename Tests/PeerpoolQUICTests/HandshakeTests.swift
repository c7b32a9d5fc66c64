import NIOCore
import NIOPosix
import PeerpoolIdentity
import PeerpoolQUIC
import Testing

@Suite(.timeLimit(.minutes(3)))
struct HandshakeTests {
    @Test func connect_bothWays_eachSideSeesTheOthersID52() async throws {
        let a = SecretKey.generate()
        let b = SecretKey.generate()
        try await withEndpoint(identities: [a]) { endpointA in
            try await withEndpoint(identities: [b]) { endpointB in
                // A dials B.
                async let acceptedByB = nextIncoming(endpointB)
                let aToB = try await endpointA.connect(to: b.id52, at: endpointB.localAddress)
                #expect(aToB.localID52 == a.id52)
                #expect(aToB.remoteID52 == b.id52)
                let seenByB = try #require(await acceptedByB)
                #expect(seenByB.remoteID52 == a.id52)
                #expect(seenByB.localID52 == b.id52)

                // B dials A, from the same socket that accepted.
                async let acceptedByA = nextIncoming(endpointA)
                let bToA = try await endpointB.connect(to: a.id52, at: endpointA.localAddress)
                #expect(bToA.remoteID52 == a.id52)
                let seenByA = try #require(await acceptedByA)
                #expect(seenByA.remoteID52 == b.id52)
            }
        }
    }

    @Test func peerpoolPeers_negotiateRawPublicKeys_withOrWithoutX509Fallback() async throws {
        for (serverFallback, clientFallback) in [(true, true), (false, true), (true, false), (false, false)] {
            let (server, keys) = try await makeServer(configuration: testConfiguration { $0.allowsX509Fallback = serverFallback })
            let (client, _) = try await makeClient(configuration: testConfiguration { $0.allowsX509Fallback = clientFallback })
            async let accepted = nextIncoming(server)
            let connection = try await client.connect(to: keys[0].id52, at: server.localAddress)
            #expect(await connection.peerCertificateType == .rawPublicKey, "server fallback \(serverFallback), client \(clientFallback)")
            let seen = try #require(await accepted)
            #expect(await seen.peerCertificateType == .rawPublicKey)
            await client.close()
            await server.close()
        }
    }

    @Test func severalIdentitiesBehindOneSocket_areChosenBySNI() async throws {
        try await withServer(identities: 5) { server, keys in
            try await withClient { client, clientKey in
                let echo = echoServer(server)
                defer { echo.cancel() }

                for key in keys.shuffled() {
                    let connection = try await client.connect(to: key.id52, at: server.localAddress)
                    #expect(connection.remoteID52 == key.id52)
                    #expect(connection.localID52 == clientKey.id52)
                    let stream = try await connection.openStream()
                    try await stream.write(Array("hello \(key.id52)".utf8))
                    try await stream.finish()
                    let answer = try await stream.readToEnd(limit: 1024)
                    #expect(String(buffer: answer) == "hello \(key.id52)")
                }
            }
        }
    }

    @Test func connect_whenAnotherKeyAnswers_failsNamingExpectedAndOfferedKeys() async throws {
        try await withServer { server, keys in
            try await withClient { client, _ in
                let impostorTarget = SecretKey.generate().id52

                let error = await #expect(throws: QUICError.self) {
                    _ = try await client.connect(to: impostorTarget, at: server.localAddress)
                }
                #expect(error?.code == .wrongPeerKey)
                #expect(error?.message.contains(impostorTarget.description) == true)
                #expect(error?.message.contains(keys[0].id52.description) == true)
                // The refused attempt leaves nothing behind on our side.
                #expect(await client.connectionCount == 0)
            }
        }
    }

    @Test func connect_toAnIdentityAMultiIdentityEndpointDoesNotHold_failsNamingTheCause() async throws {
        try await withServer(identities: 2) { server, _ in
            try await withClient { client, _ in
                let absent = SecretKey.generate().id52
                let error = await #expect(throws: QUICError.self) {
                    _ = try await client.connect(to: absent, at: server.localAddress)
                }
                #expect(error?.code == .handshakeFailed)
                #expect(error?.message.contains("may not serve \(absent)") == true, "\(String(describing: error))")
            }
        }
    }

    @Test func connect_withForeignALPN_isRefusedBothWays() async throws {
        try await withServer { server, keys in
            try await withClient(configuration: testConfiguration { $0.alpn = "h3" }) { client, _ in
                let error = await #expect(throws: QUICError.self) {
                    _ = try await client.connect(to: keys[0].id52, at: server.localAddress)
                }
                #expect(error?.code == .handshakeFailed, "\(String(describing: error))")
                #expect(error?.message.contains("no_application_protocol") == true || error?.message.contains("ALPN") == true, "\(String(describing: error))")
                #expect(await nextIncoming(server, timeout: .milliseconds(300)) == nil)
            }
        }
    }

    @Test func connect_toSilentSocket_failsWithHandshakeTimeout() async throws {
        // A UDP socket that never answers.
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withClient(configuration: testConfiguration { $0.handshakeTimeout = .seconds(1) }) { client, _ in
            let clock = ContinuousClock()
            let start = clock.now
            let error = await #expect(throws: QUICError.self) {
                _ = try await client.connect(to: SecretKey.generate().id52, at: silent.localAddress!)
            }
            #expect(error?.code == .handshakeTimeout)
            #expect(clock.now - start < .seconds(30), "fails near the 1 s handshake timeout, never hangs")
        }
    }

    @Test func connect_cancelled_withdrawsTheAttempt() async throws {
        let silent = try await DatagramBootstrap(group: .singletonMultiThreadedEventLoopGroup)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { silent.close(promise: nil) }
        try await withClient { client, _ in
            let attempt = Task { try await client.connect(to: SecretKey.generate().id52, at: silent.localAddress!) }
            // Wait until the attempt exists, then cancel it.
            while await client.connectionCount == 0 { await Task.yield() }
            attempt.cancel()
            await #expect(throws: CancellationError.self) { _ = try await attempt.value }
            #expect(await client.connectionCount == 0)
        }
    }

    @Test func close_withApplicationCode_isReportedToThePeer() async throws {
        try await ConnectedPair.with { pair throws in
            let connection = pair.connection
            let serverSide = pair.serverSide
            await connection.close(code: 42, reason: "done")
            #expect(await connection.closed() == .locallyClosed(applicationCode: 42))
            let seen = await serverSide.closed()
            #expect(seen == .peerClosed(applicationCode: 42, reason: "done"), "\(seen)")
            await #expect(throws: QUICError.self) { _ = try await serverSide.openStream() }
        }
    }
}
