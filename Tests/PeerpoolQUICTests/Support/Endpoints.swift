import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import PeerpoolTestSupport
import Testing

/// A test configuration: short timeouts so failures show within a test's time limit.
func testConfiguration(_ change: (inout QUICConfiguration) -> Void = { _ in }) -> QUICConfiguration {
    var configuration = QUICConfiguration()
    // Generous: a loaded 2-core CI machine runs the heavy suites alongside. Tests about
    // timeouts set their own small values.
    configuration.handshakeTimeout = .seconds(15)
    configuration.idleTimeout = .seconds(30)
    change(&configuration)
    return configuration
}

/// A listening endpoint on 127.0.0.1 with fresh identities.
func makeServer(
    identities: Int = 1, configuration: QUICConfiguration = testConfiguration()
) async throws -> (QUICEndpoint, [SecretKey]) {
    let keys = (0..<identities).map { _ in SecretKey.generate() }
    let endpoint = try await QUICEndpoint.bind(host: "127.0.0.1", port: 0, identities: keys, configuration: configuration)
    return (endpoint, keys)
}

/// A dial-only endpoint on 127.0.0.1 with one fresh identity.
func makeClient(configuration: QUICConfiguration = testConfiguration()) async throws -> (QUICEndpoint, SecretKey) {
    let key = SecretKey.generate()
    let endpoint = try await QUICEndpoint.bind(
        host: "127.0.0.1", port: 0, identities: [key], acceptIncoming: false, configuration: configuration)
    return (endpoint, key)
}

/// Runs `body` with `makeServer`'s endpoint and keys, then closes the endpoint, awaited, whether
/// `body` returned or threw.
func withServer<T>(
    identities: Int = 1, configuration: QUICConfiguration = testConfiguration(),
    _ body: (QUICEndpoint, [SecretKey]) async throws -> T
) async throws -> T {
    let (server, keys) = try await makeServer(identities: identities, configuration: configuration)
    return try await withCleanup { try await body(server, keys) } cleanup: { await server.close() }
}

/// Runs `body` with `makeClient`'s endpoint and key, then closes the endpoint, awaited, whether
/// `body` returned or threw.
func withClient<T>(
    configuration: QUICConfiguration = testConfiguration(), _ body: (QUICEndpoint, SecretKey) async throws -> T
) async throws -> T {
    let (client, key) = try await makeClient(configuration: configuration)
    return try await withCleanup { try await body(client, key) } cleanup: { await client.close() }
}

/// Runs `body` with an endpoint on `host` (a fresh port), then closes the endpoint, awaited,
/// whether `body` returned or threw.
func withEndpoint<T>(
    host: String = "127.0.0.1", identities: [SecretKey], acceptIncoming: Bool = true,
    configuration: QUICConfiguration = testConfiguration(), _ body: (QUICEndpoint) async throws -> T
) async throws -> T {
    let endpoint = try await QUICEndpoint.bind(
        host: host, port: 0, identities: identities, acceptIncoming: acceptIncoming, configuration: configuration)
    return try await withCleanup { try await body(endpoint) } cleanup: { await endpoint.close() }
}

/// Runs `body` with a client's connection to a server that echoes every stream (`echoServer`),
/// then stops the echo and closes both endpoints, awaited, whether `body` returned or threw.
func withEchoConnection<T>(
    server serverConfiguration: QUICConfiguration = testConfiguration(),
    client clientConfiguration: QUICConfiguration = testConfiguration(),
    _ body: (QUICConnection) async throws -> T
) async throws -> T {
    try await withServer(configuration: serverConfiguration) { server, keys in
        try await withClient(configuration: clientConfiguration) { client, _ in
            let echo = echoServer(server)
            defer { echo.cancel() }
            return try await body(try await client.connect(to: keys[0].id52, at: server.localAddress))
        }
    }
}

/// A client connected to a server, with both ends of the connection.
struct ConnectedPair {
    let server: QUICEndpoint
    let client: QUICEndpoint
    /// The client's end.
    let connection: QUICConnection
    /// The server's end, as `incomingConnections` delivered it.
    let serverSide: QUICConnection

    static func make(
        server serverConfiguration: QUICConfiguration = testConfiguration(),
        client clientConfiguration: QUICConfiguration = testConfiguration()
    ) async throws -> ConnectedPair {
        let (server, keys) = try await makeServer(configuration: serverConfiguration)
        let (client, _) = try await makeClient(configuration: clientConfiguration)
        async let accepted = nextIncoming(server)
        let connection = try await client.connect(to: keys[0].id52, at: server.localAddress)
        guard let serverSide = await accepted else { throw PeerProcessError(message: "server saw no connection") }
        return ConnectedPair(server: server, client: client, connection: connection, serverSide: serverSide)
    }

    /// Runs `body` with a fresh pair (`make`), then closes both endpoints, awaited, whether
    /// `body` returned or threw.
    static func with<T>(
        server serverConfiguration: QUICConfiguration = testConfiguration(),
        client clientConfiguration: QUICConfiguration = testConfiguration(),
        _ body: (ConnectedPair) async throws -> T
    ) async throws -> T {
        let pair = try await make(server: serverConfiguration, client: clientConfiguration)
        return try await withCleanup { try await body(pair) } cleanup: { await pair.close() }
    }

    func close() async {
        await client.close()
        await server.close()
    }
}

/// Serves every stream of every incoming connection by echoing it back, until cancelled.
func echoServer(_ endpoint: QUICEndpoint) -> Task<Void, Never> {
    Task {
        await withDiscardingTaskGroup { group in
            for await connection in endpoint.incomingConnections {
                group.addTask { await echoStreams(of: connection) }
            }
        }
    }
}

/// Echoes every stream the peer opens on `connection`, until it closes or the task is cancelled.
func echoStreams(of connection: QUICConnection) async {
    await withDiscardingTaskGroup { streams in
        while let stream = try? await connection.acceptStream() {
            streams.addTask {
                do {
                    while let chunk = try await stream.read() { try await stream.write(chunk) }
                    try await stream.finish()
                } catch {}
            }
        }
    }
}

/// The next incoming connection, or nil after `timeout`.
func nextIncoming(_ endpoint: QUICEndpoint, timeout: Duration = .seconds(10)) async -> QUICConnection? {
    await withTaskGroup(of: QUICConnection?.self) { group in
        group.addTask {
            var iterator = endpoint.incomingConnections.makeAsyncIterator()
            return await iterator.next()
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
}

/// Bytes 0, 1, 2, ... 255, 0, 1, ... so that misordering or loss shows.
func patternBuffer(offset: Int, count: Int) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.reserveCapacity(count)
    buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { out in
        for i in 0..<count { out[i] = UInt8(truncatingIfNeeded: offset + i) }
        return count
    }
    return buffer
}

/// Reads `stream` to its end, checking every byte against `patternBuffer`; returns the count.
func readVerifyingPattern(_ stream: QUICStream, expected: Int) async throws -> Int {
    var offset = 0
    while let chunk = try await stream.read() {
        var position = chunk.readerIndex
        while position < chunk.writerIndex {
            let length = min(64 * 1024, chunk.writerIndex - position)
            let want = patternBuffer(offset: offset, count: length)
            guard chunk.getSlice(at: position, length: length) == want else {
                Issue.record("bytes differ in \(offset)..<\(offset + length)")
                return offset
            }
            position += length
            offset += length
        }
    }
    #expect(offset == expected)
    return offset
}

/// Writes `total` bytes of `patternBuffer` to `stream` in 256 KiB chunks, then finishes it.
func writePattern(_ stream: QUICStream, total: Int) async throws {
    let chunk = 256 * 1024
    for offset in stride(from: 0, to: total, by: chunk) {
        try await stream.write(patternBuffer(offset: offset, count: min(chunk, total - offset)))
    }
    try await stream.finish()
}
