import CZMQ
import Foundation
import PeerpoolTestSupport
import PeerpoolWire
import Synchronization

/// A stand-in for `peerpool serve` that the test drives by hand: a real ZeroMQ ROUTER bound to
/// `ipc://<private dir>/frontend.sock`, on a `ZMQReactor` of its own. What clients send is
/// queued for the test to take with `next(within:)`; the test answers with `send`.
final class ScriptedSupervisor: @unchecked Sendable {
    struct Message: Sendable, CustomStringConvertible {
        var routingID: [UInt8]
        var header: WireHeader
        var body: [UInt8]?

        var description: String { "\(header.type) id \(header.id) body \(body?.count ?? -1) bytes" }
        var bodyText: String { String(decoding: body ?? [], as: UTF8.self) }
        var bodyJSON: [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(body ?? []))) as? [String: Any] ?? [:]
        }
        var bodyUInt32: UInt32? {
            guard let body, body.count == 4 else { return nil }
            return body.withUnsafeBytes { WireInteger.uint32($0) }
        }
        var bodyUInt64: UInt64? {
            guard let body, body.count == 8 else { return nil }
            return body.withUnsafeBytes { WireInteger.uint64($0) }
        }
    }

    let directory: URL
    let endpoint: String
    private let reactor: ZMQReactor
    private let context: ZMQContext
    /// Reactor thread only.
    private var router: ZMQSocket?
    /// Reactor thread only: who to answer (the client that spoke last).
    private var lastRoutingID: [UInt8] = []
    private let inbox = ScriptedInbox<Message>()

    /// Binds in `directory` (a fresh private one by default; pass an earlier supervisor's to
    /// stand in for a restarted supervisor on the same endpoint).
    init(directory: URL? = nil) throws {
        self.directory = try directory ?? makePrivateDirectory(prefix: "peerpool-client")
        endpoint = "ipc://\(self.directory.path)/frontend.sock"
        context = try ZMQContext()
        let router = try ZMQSocket(context, .router)
        try router.bind(endpoint)
        self.router = router
        reactor = try ZMQReactor(name: "scripted-supervisor")
        reactor.start { [self] in
            // The socket moves to the reactor thread here (the reactor's queue is a barrier).
            if let router = self.router { reactor.watch(router) { [unowned self] in receive() } }
            reactor.onShutdown { [self] in
                self.router?.close()
                self.router = nil
            }
        }
    }

    private func receive() {
        for _ in 0..<1000 {
            guard let router, let (frames, _) = try? router.receive(maxParts: 3) else { return }
            guard frames.count >= 2, let header = try? frames[1].withUnsafeBytes({ bytes throws(WireError) in try WireHeader(decoding: bytes) }) else {
                continue
            }
            lastRoutingID = frames[0].bytes
            inbox.post(Message(routingID: frames[0].bytes, header: header, body: frames.count > 2 ? frames[2].bytes : nil))
        }
    }

    /// The next message a client sent; throws when none arrives within `timeout`.
    func next(within timeout: Duration = .seconds(5)) async throws -> Message {
        guard let message = await inbox.next(within: timeout) else {
            throw TestSupportError("the scripted supervisor received nothing within \(timeout)")
        }
        return message
    }

    /// The next message, which must be of `type`. Messages of the `skipping` types are passed
    /// over (CREDIT, where whether the client credits at once depends on whether a read was
    /// already waiting when DATA arrived).
    func expect(_ type: WireMessageType, skipping: Set<WireMessageType> = [], within timeout: Duration = .seconds(5)) async throws -> Message {
        for _ in 0..<1000 {
            let message = try await next(within: timeout)
            if message.header.type == type { return message }
            guard skipping.contains(message.header.type) else {
                throw TestSupportError("expected \(type), the scripted supervisor received \(message)")
            }
        }
        throw TestSupportError("expected \(type), the scripted supervisor received 1000 other messages")
    }

    /// Sends a message to the client that spoke last.
    func send(_ type: WireMessageType, id: UInt64, body: [UInt8]? = nil) {
        reactor.execute { [self] in
            guard let router else { return }
            router.send(lastRoutingID, more: true)
            router.send(WireHeader(type, id: id), more: body != nil)
            if let body { router.send(body, more: false) }
        }
    }

    func sendOpened(id: UInt64, stream: UInt64, sendWindow: UInt32) {
        send(.opened, id: id, body: WireInteger.bytes(stream) + WireInteger.bytes(sendWindow) + [0, 0, 0, 0])
    }

    func sendError(_ type: WireMessageType = .error, id: UInt64, code: String, message: String) {
        send(type, id: id, body: WireError(.init(rawValue: code), message).jsonBody)
    }

    static let statusJSON = #"""
        {"version": 1, "pid": 1234, "uptime_s": 12.5, "clients": 1, "streams": 3, "requests": 0,
         "workers": [{"index": 0, "pid": 1240, "state": "running", "uptime_s": 12.4, "restarts": 0,
                      "connections": 2, "streams": 3, "requests": 0},
                     {"index": 1, "pid": null, "state": "backoff", "uptime_s": null, "restarts": 4,
                      "connections": 0, "streams": 0, "requests": 0, "future_field": true}]}
        """#

    /// Takes the next message, which must be STATUS, and answers it.
    func answerStatus(within timeout: Duration = .seconds(5)) async throws {
        let status = try await expect(.status, within: timeout)
        send(.statusReply, id: status.header.id, body: Array(Self.statusJSON.utf8))
    }

    /// Like a supervisor that exits: stop listening (the socket file goes) and close the socket,
    /// which closes every client's connection.
    func closeSocket() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            reactor.execute { [self] in
                if let router {
                    zmq_unbind(router.handle, endpoint)
                    reactor.unwatch(router)
                    router.close()
                    self.router = nil
                }
                continuation.resume()
            }
        }
    }

    /// Stops the thread and closes the socket; `removeDirectory: false` leaves the endpoint's
    /// directory for a successor.
    func shutDown(removeDirectory: Bool = true) async {
        reactor.stop()
        await reactor.stopped()
        context.terminate()
        if removeDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Whether nothing else was received: for the end of a test.
    var isDrained: Bool { inbox.isEmpty }
}

/// A queue of posted values and tasks waiting for them, each wait bounded.
final class ScriptedInbox<Value: Sendable>: Sendable {
    private struct State {
        var values: [Value] = []
        var waiters: [UInt64: CheckedContinuation<Value?, Never>] = [:]
        var expired: Set<UInt64> = []
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    var isEmpty: Bool { state.withLock { $0.values.isEmpty } }

    func post(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value?, Never>? in
            if let first = state.waiters.keys.min() { return state.waiters.removeValue(forKey: first) }
            state.values.append(value)
            return nil
        }
        waiter?.resume(returning: value)
    }

    /// The next value, or nil after `timeout`.
    func next(within timeout: Duration) async -> Value? {
        let id = state.withLock { state in
            state.nextWaiter += 1
            return state.nextWaiter
        }
        return await withTaskGroup(of: Value?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Value?? in
                        if state.expired.remove(id) != nil { return .some(nil) }
                        if !state.values.isEmpty { return .some(state.values.removeFirst()) }
                        state.waiters[id] = continuation
                        return .none
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                let waiter = self.state.withLock { state in
                    let waiter = state.waiters.removeValue(forKey: id)
                    if waiter == nil { state.expired.insert(id) }
                    return waiter
                }
                waiter?.resume(returning: nil)
                return nil
            }
            var result: Value?
            for await value in group {
                if let value {
                    result = value
                    group.cancelAll()
                }
            }
            // The first child may have finished before the timer expired the id: tidy up.
            _ = state.withLock { $0.expired.remove(id) }
            return result
        }
    }
}
