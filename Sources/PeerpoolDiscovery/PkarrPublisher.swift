import Foundation
import Logging
import PeerpoolIdentity
import ServiceLifecycle

/// Publishes one identity's iroh record to a pkarr relay, as iroh's `PkarrPublisher` does: at
/// start, every ``Configuration/republishInterval``, and at once when ``update(_:)`` changes the
/// record. Off unless an application creates and runs it. A failed publish is retried after
/// ``Configuration/retryDelay``.
public actor PkarrPublisher: Service {
    public struct Configuration: Sendable {
        /// Default: 5 minutes (iroh's).
        public var republishInterval: Duration = .seconds(300)
        /// Wait after a failed publish. Default: 30 s.
        public var retryDelay: Duration = .seconds(30)
        /// The TTL of the published records. Default: 30 s (iroh's).
        public var ttl: UInt32 = IrohEndpointRecord.defaultTTL
        public init() {}
    }

    private let secretKey: SecretKey
    private let relay: PkarrRelayClient
    public let configuration: Configuration
    private let logger: Logger
    private var record: IrohEndpointRecord
    private var lastTimestamp: UInt64 = 0
    /// The packet last accepted by the relay.
    public private(set) var lastPublished: PkarrSignedPacket?
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    public init(secretKey: SecretKey, record: IrohEndpointRecord, relay: PkarrRelayClient,
                configuration: Configuration = Configuration(), logger: Logger) {
        self.secretKey = secretKey
        self.record = record
        self.relay = relay
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "peer.id52"] = "\(secretKey.id52)"
        self.logger = logger
        (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// New addresses or relay: published at once by ``run()`` when they differ from the current ones.
    public func update(_ newRecord: IrohEndpointRecord) {
        guard newRecord != record else { return }
        record = newRecord
        changed.yield()
    }

    /// Signs and PUTs the current record once. Timestamps are microseconds of wall-clock time,
    /// strictly increasing even if the clock steps back (a relay refuses older packets with 409).
    @discardableResult
    public func publishNow() async throws(DiscoveryError) -> PkarrSignedPacket {
        let wallClock = UInt64(max(0, Date().timeIntervalSince1970 * 1_000_000))
        lastTimestamp = max(wallClock, lastTimestamp + 1)
        let published = IrohEndpointRecord(peer: secretKey.id52, addresses: record.addresses, relayURLs: record.relayURLs)
        let packet = try PkarrSignedPacket(signing: published, as: secretKey, timestamp: lastTimestamp, ttl: configuration.ttl)
        try await relay.put(packet)
        lastPublished = packet
        logger.debug("published pkarr record", metadata: ["pkarr.relay": "\(relay.relayURL)", "pkarr.record": "\(published)"])
        return packet
    }

    /// Publishes until cancelled or graceful shutdown.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.loop()
        }
    }

    private func loop() async {
        while !Task.isCancelled {
            var delay = configuration.republishInterval
            do {
                try await publishNow()
            } catch {
                if Task.isCancelled { return }
                logger.info("pkarr publish failed; retrying", metadata: ["pkarr.error": "\(error)"])
                delay = min(configuration.retryDelay, configuration.republishInterval)
            }
            await waitForChange(orFor: delay)
        }
    }

    /// Returns when the record changed or `delay` passed (or the task is cancelled).
    private func waitForChange(orFor delay: Duration) async {
        let changes = self.changes
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                for await _ in changes { return }
            }
            group.addTask { try? await Task.sleep(for: delay) }
            await group.next()
            group.cancelAll()
        }
    }
}
