import Logging
import NIOCore
import PeerpoolIdentity
import PeerpoolQUIC
import ServiceLifecycle

/// A stream a peer opened, after its header was read and acknowledged.
public struct IncomingStream: Sendable {
    public let stream: PeerStream
    public var header: ProtocolHeader { stream.header }
    /// The identity the peer proved.
    public var peer: ID52 { stream.remoteID52 }
}

/// What the accepting side serves: which protocols, and which of them carry an extra line
/// after the protocol line (the acceptor cannot tell on its own: fastn-net leaves that line to
/// the protocol's handler).
public struct AcceptorConfiguration: Sendable {
    /// Protocols handed to the handler. `Ping` is always answered by the acceptor itself.
    public var protocols: Set<StreamProtocol>
    /// Protocols whose header has an extra line; it is read before `ack` and handed over.
    public var protocolsWithExtraLine: Set<StreamProtocol> = []
    /// Longest header line (and extra line). Default: 64 KiB.
    public var maxHeaderBytes = 64 * 1024
    /// A stream whose header does not arrive within this is reset. Default: 10 s.
    public var headerTimeout: Duration = .seconds(10)
    /// On graceful shutdown, handlers still running get this long before the endpoint closes.
    /// Default: 5 s.
    public var gracePeriod: Duration = .seconds(5)
    /// Application code the endpoint's connections are closed with at shutdown. Default: 0.
    public var closeCode: UInt64 = 0
    /// Run handlers on the endpoint's event loop (saves a thread switch per stream call). Only
    /// for handlers that never block: a slow one stalls every connection. Default: false.
    public var runHandlersOnEventLoop = false

    public init(protocols: Set<StreamProtocol>) {
        self.protocols = protocols
    }
}

/// The accepting side of fastn's stream protocol on an endpoint's incoming connections.
///
/// For each stream: reads the header line (bounded; oversize, non-UTF-8 or non-protocol JSON
/// resets the stream with a `ProtocolErrorCode` and leaves the connection up), answers `ack`.
/// `Ping` is answered `ack\npong\n` and finished. A served protocol goes to the handler; any
/// other is answered `refused: <protocol>` and finished, so the opener gets a clear error.
public final class StreamAcceptor: Service, Sendable {
    private let endpoint: QUICEndpoint
    private let configuration: AcceptorConfiguration
    private let logger: Logger
    private let handler: @Sendable (IncomingStream) async -> Void

    public init(
        endpoint: QUICEndpoint, configuration: AcceptorConfiguration,
        logger: Logger = Logger(label: "peerpool.acceptor", factory: { _ in SwiftLogNoOpLogHandler() }),
        handler: @escaping @Sendable (IncomingStream) async -> Void
    ) {
        self.endpoint = endpoint
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
    }

    /// Serves incoming connections until cancelled or graceful shutdown. On graceful shutdown it
    /// takes no new connection, lets running handlers finish within the grace period, then
    /// closes the endpoint (every connection) with the close code.
    public func run() async throws {
        let endpoint = self.endpoint
        let configuration = self.configuration
        let handlers = self.handlers
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await connection in endpoint.incomingConnections {
                    group.addTask(executorPreference: endpoint.taskExecutor) { await self.serve(connection) }
                }
            }
        } onGracefulShutdown: {
            Task {
                await handlers.waitUntilIdle(atMost: configuration.gracePeriod)
                await endpoint.close(code: configuration.closeCode)
            }
        }
    }

    /// Handlers running now; shutdown waits for them (within the grace period).
    private let handlers = InFlight()

    /// Serves the streams of one connection until it ends. `run()` calls it for every incoming
    /// connection; applications that accept connections themselves can call it directly.
    public func serve(_ connection: QUICConnection) async {
        await withDiscardingTaskGroup { group in
            while let stream = try? await connection.acceptStream() {
                group.addTask(executorPreference: endpoint.taskExecutor) { await self.handle(stream, on: connection) }
            }
        }
    }

    private func handle(_ stream: QUICStream, on connection: QUICConnection) async {
        var logger = logger
        logger[metadataKey: "peer.id52"] = "\(connection.remoteID52)"
        let configuration = configuration
        let outcome: HeaderOutcome
        do {
            outcome = try await withTimeout(configuration.headerTimeout, { HeaderTimeout() }) {
                try await Self.readHeader(stream, configuration: configuration)
            }
        } catch is HeaderTimeout {
            outcome = .bad(ProtocolErrorCode.headerTimeout, "no header within \(configuration.headerTimeout)")
        } catch {
            logger.debug("stream failed before its header", metadata: ["error": "\(error)"])
            return
        }
        do {
            switch outcome {
            case .bad(let code, let why):
                logger.debug("bad stream header", metadata: ["reason": "\(why)"])
                await stream.reset(code: code)
                await stream.stopSending(code: code)
            case .ping:
                try await stream.write(ProtocolWords.ack + ProtocolWords.pong)
                try await stream.finish()
            case .refused(let header):
                try await stream.write(Array("\(ProtocolWords.refusedPrefix)\(header.protocol.json) is not served here\n".utf8))
                try await stream.finish()
                await stream.stopSending(code: 0)
            case .accepted(let header, let leftover):
                try await stream.write(ProtocolWords.ack)
                let peerStream = PeerStream(
                    header: header, local: connection.localID52, remote: connection.remoteID52, stream: stream, leftover: leftover)
                await handlers.enter()
                if configuration.runHandlersOnEventLoop {
                    await handler(IncomingStream(stream: peerStream))
                } else {
                    // The protocol work above ran on the loop; the application's handler runs on
                    // the global executor, where blocking cannot stall the endpoint.
                    await withTaskExecutorPreference(globalConcurrentExecutor) {
                        await handler(IncomingStream(stream: peerStream))
                    }
                }
                await handlers.leave()
            }
        } catch {
            logger.debug("stream failed", metadata: ["error": "\(error)"])
        }
    }

    private struct HeaderTimeout: Error {}

    private enum HeaderOutcome: Sendable {
        case ping
        case accepted(ProtocolHeader, ByteBuffer)
        case refused(ProtocolHeader)
        case bad(UInt64, String)
    }

    private static func readHeader(_ stream: QUICStream, configuration: AcceptorConfiguration) async throws -> HeaderOutcome {
        var reader = LineReader(stream: stream)
        let line: String
        do {
            line = try await reader.nextLine(limit: configuration.maxHeaderBytes)
        } catch LineReader.Failure.tooLong {
            return .bad(ProtocolErrorCode.headerTooLong, "header longer than \(configuration.maxHeaderBytes) bytes")
        } catch LineReader.Failure.notUTF8 {
            return .bad(ProtocolErrorCode.malformedHeader, "header is not UTF-8")
        } catch LineReader.Failure.endOfStream {
            return .bad(ProtocolErrorCode.malformedHeader, "stream ended inside the header")
        }
        let parsed: StreamProtocol
        do {
            parsed = try StreamProtocol(json: line)
        } catch {
            return .bad(ProtocolErrorCode.malformedHeader, "\(error)")
        }
        if parsed == .ping { return .ping }
        guard configuration.protocols.contains(parsed) else { return .refused(ProtocolHeader(parsed)) }
        var extra: String?
        if configuration.protocolsWithExtraLine.contains(parsed) {
            do {
                extra = try await reader.nextLine(limit: configuration.maxHeaderBytes)
            } catch {
                return .bad(ProtocolErrorCode.malformedHeader, "missing or bad extra line after \(parsed)")
            }
        }
        return .accepted(ProtocolHeader(parsed, extra: extra), reader.buffered)
    }
}

/// Counts running handlers and lets shutdown wait until none is left.
actor InFlight {
    private var count = 0
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    func enter() { count += 1 }

    func leave() {
        count -= 1
        if count == 0 { releaseWaiters() }
    }

    /// Returns when no handler runs, or after `limit`.
    func waitUntilIdle(atMost limit: Duration) async {
        guard count > 0 else { return }
        let timer = Task {
            // Cancelled once idle came first: then there is nothing to release.
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            self.releaseWaiters()
        }
        await withCheckedContinuation { idleWaiters.append($0) }
        timer.cancel()
    }

    private func releaseWaiters() {
        for waiter in idleWaiters { waiter.resume() }
        idleWaiters = []
    }
}
