import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A minimal HTTP/1.1 server for Prometheus scrapes: `GET /metrics` answers with what `render`
/// returns (text exposition format 0.0.4); anything else gets 404 or 405.
///
/// Hardened for a stranger on the host: request heads are bounded by NIO's HTTP parser, bodies
/// are discarded, at most ``maximumConnections`` connections are served at once (more are closed
/// at accept), and an idle connection is closed after ``idleTimeout``. One scrape at a time per
/// connection; a slow scraper never holds the supervisor's reactor (rendering hops there and back).
public final class MetricsHTTPServer: Service, Sendable {
    /// Connections served at once. Default: 16 (Prometheus uses one).
    public static let maximumConnections = 16
    /// A connection with no request for this long is closed. Default: 30 s.
    public static let idleTimeout: TimeAmount = .seconds(30)

    private let channel: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
    private let render: @Sendable () async -> [UInt8]
    private let logger: Logger

    /// The address actually bound (port 0 picks a free one).
    public let localAddress: SocketAddress

    /// Binds `host:port` at once, so a taken port is an error before anything else starts.
    public init(
        host: String, port: Int, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, logger: Logger,
        render: @escaping @Sendable () async -> [UInt8]
    ) async throws {
        self.render = render
        self.logger = logger
        let open = ManagedAtomicCounter()
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 16)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { child in
                child.eventLoop.makeCompletedFuture {
                    guard open.increment() <= Self.maximumConnections else {
                        open.decrement()
                        throw ChannelError.inputClosed
                    }
                    child.closeFuture.whenComplete { _ in open.decrement() }
                    try child.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                    try child.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: child)
                }
            }
        localAddress = channel.channel.localAddress!
    }

    /// Serves until cancelled or graceful shutdown, then closes the socket.
    public func run() async throws {
        let channel = self.channel
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                do {
                    try await channel.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { await self.serve(connection) }
                        }
                    }
                } catch {
                    self.logger.debug("metrics server stopped", metadata: ["error": "\(error)"])
                }
            }
        }
        try? await channel.channel.close()
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let request): head = request
                case .body: continue
                case .end:
                    guard let request = head else { continue }
                    head = nil
                    try await self.answer(request, outbound)
                    if !request.isKeepAlive { return }
                }
            }
        }
    }

    private func answer(_ request: HTTPRequestHead, _ outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>) async throws {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        let (status, body, type): (HTTPResponseStatus, [UInt8], String)
        if path != "/metrics" {
            (status, body, type) = (.notFound, Array("not found: scrape /metrics\n".utf8), "text/plain; charset=utf-8")
        } else if request.method != .GET && request.method != .HEAD {
            (status, body, type) = (.methodNotAllowed, Array("use GET\n".utf8), "text/plain; charset=utf-8")
        } else {
            (status, body, type) = (.ok, await render(), "text/plain; version=0.0.4; charset=utf-8")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: "\(body.count)")
        headers.add(name: "Connection", value: request.isKeepAlive ? "keep-alive" : "close")
        try await outbound.write(.head(HTTPResponseHead(version: request.version, status: status, headers: headers)))
        if request.method != .HEAD { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
        try await outbound.write(.end(nil))
    }
}

/// Connections open right now, shared by the accepting closures of every event loop.
private final class ManagedAtomicCounter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() -> Int { value.wrappingAdd(1, ordering: .relaxed).newValue }
    func decrement() { value.wrappingSubtract(1, ordering: .relaxed) }
}
