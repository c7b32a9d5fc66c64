import NIOCore
import PeerpoolIdentity
import PeerpoolRelay
import Synchronization

/// One datagram (or batch) as the receiver got it.
struct ReceivedDatagrams: Sendable, Equatable {
    let source: ID52
    let bytes: [UInt8]
    let segmentSize: Int?
}

/// What one relay client delivered: its events and datagrams, in order. Tests wait on these
/// with a deadline (polled every 10 ms), never on a sleep.
final class RelayClientRecorder: Sendable {
    private let recorded = Mutex<(events: [IrohRelayClient.Event], datagrams: [ReceivedDatagrams])>(([], []))

    func attach(to client: IrohRelayClient) {
        client.setReceiver { [self] source, buffer, segmentSize in
            recorded.withLock { $0.datagrams.append(ReceivedDatagrams(source: source, bytes: Array(buffer.readableBytesView), segmentSize: segmentSize)) }
        }
        client.setEventHandler { [self] event in
            recorded.withLock { $0.events.append(event) }
        }
    }

    var events: [IrohRelayClient.Event] { recorded.withLock { $0.events } }
    var datagrams: [ReceivedDatagrams] { recorded.withLock { $0.datagrams } }

    /// How many `.connected` events arrived.
    var connections: Int { events.filter { if case .connected = $0 { true } else { false } }.count }

    /// The disconnect reasons so far.
    var failures: [RelayError] {
        events.compactMap { if case .disconnected(let error) = $0 { error } else { nil } }
    }

    /// Bytes received from `source`, concatenated in arrival order.
    func bytes(from source: ID52) -> [UInt8] {
        datagrams.filter { $0.source == source }.flatMap(\.bytes)
    }

    /// `check()`'s first non-nil result; throws naming `what` (and the events) after `timeout`.
    @discardableResult
    func wait<T>(for what: String, within timeout: Duration = .seconds(20), _ check: () -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let value = check() { return value }
            guard ContinuousClock.now < deadline else {
                throw RecorderTimeout(description: "no \(what) within \(timeout); events: \(events)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until `condition` holds.
    func wait(until what: String, within timeout: Duration = .seconds(20), _ condition: () -> Bool) async throws {
        try await wait(for: what, within: timeout) { condition() ? () : nil }
    }
}

struct RecorderTimeout: Error, CustomStringConvertible {
    let description: String
}
