import CZMQ
import Foundation
import Synchronization
import Testing
@testable import PeerpoolWire

/// The reactor with real libzmq sockets over ipc:// in a private directory.
@Suite(.timeLimit(.minutes(3)))
struct ZMQReactorTests {
    static func privateEndpoint(_ name: String) throws -> (endpoint: String, directory: String) {
        var template = Array("/tmp/ppw-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw ZMQError("mkdtemp", errno: errno)
        }
        let directory = String(cString: made)
        return ("ipc://\(directory)/\(name).sock", directory)
    }

    /// Runs `body` on the reactor thread and returns its result.
    static func onReactor<T: Sendable>(_ reactor: ZMQReactor, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            reactor.execute { continuation.resume(with: Result { try body() }) }
        }
    }

    @Test func executeRunsInOrderOnTheReactorThread() async throws {
        let reactor = try ZMQReactor(name: "test-order")
        reactor.start()
        let seen = Mutex<[Int]>([])
        let onThread = Mutex(true)
        for index in 0..<1000 {
            reactor.execute {
                seen.withLock { $0.append(index) }
                if !reactor.isOnReactorThread { onThread.withLock { $0 = false } }
            }
        }
        _ = try await Self.onReactor(reactor) { 0 }
        #expect(seen.withLock { $0 } == Array(0..<1000))
        #expect(onThread.withLock { $0 })
        #expect(!reactor.isOnReactorThread)
        reactor.stop()
        await reactor.stopped()
    }

    @Test func theReactorThread_isNamedAfterTheReactor_withinTheKernelLimit() async throws {
        let reactor = try ZMQReactor(name: "peerpool-worker-12")
        reactor.start()
        let name = try await Self.onReactor(reactor) {
            try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)
        }
        #expect(name == "zmq-worker-12\n")
        #expect(try ZMQReactor(name: "a-very-long-reactor-name").threadName == "zmq-a-very-long")
        reactor.stop()
        await reactor.stopped()
    }

    @Test func timersFireInDeadlineOrderAndCancelledOnesDoNot() async throws {
        let reactor = try ZMQReactor(name: "test-timers")
        reactor.start()
        let fired = Mutex<[String]>([])
        let (done, finish) = AsyncStream<Void>.makeStream()
        reactor.execute {
            reactor.schedule(after: .milliseconds(30)) { fired.withLock { $0.append("late") }; finish.yield() }
            reactor.schedule(after: .milliseconds(5)) { fired.withLock { $0.append("early") } }
            let cancelled = reactor.schedule(after: .milliseconds(10)) { fired.withLock { $0.append("cancelled") } }
            reactor.cancel(cancelled)
        }
        for await _ in done { break }
        #expect(fired.withLock { $0 } == ["early", "late"])
        reactor.stop()
        await reactor.stopped()
    }

    @Test func dealerAndRouterExchangeMultipartMessagesAndForwardFramesWithoutCopying() async throws {
        let (endpoint, directory) = try Self.privateEndpoint("pair")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = try ZMQContext()
        let reactor = try ZMQReactor(name: "test-pair")
        reactor.start()
        let (received, deliver) = AsyncStream<[[UInt8]]>.makeStream()
        final class Sockets: @unchecked Sendable { var router: ZMQSocket?; var dealer: ZMQSocket? }
        let sockets = Sockets()
        _ = try await Self.onReactor(reactor) {
            let router = try ZMQSocket(context, .router)
            try router.bind(endpoint)
            let dealer = try ZMQSocket(context, .dealer)
            try dealer.setOption(ZMQ_ROUTING_ID, bytes: Array("client-1".utf8))
            try dealer.connect(endpoint)
            sockets.router = router
            sockets.dealer = dealer
            reactor.watch(router) {
                while let (frames, _) = try? router.receive() {
                    deliver.yield(frames.map(\.bytes))
                    // Echo the body back, moved rather than copied.
                    router.send(frames[0], more: true)
                    router.send(WireHeader(.data, id: 9), more: true)
                    router.send(frames[2], more: false)
                    #expect(frames[2].count == 0)
                }
            }
            reactor.watch(dealer) {
                while let (frames, _) = try? dealer.receive() { deliver.yield(frames.map(\.bytes)) }
            }
            reactor.onShutdown { router.close(); dealer.close() }
            dealer.send(WireHeader(.data, id: 9), more: true)
            dealer.send(Array("hello".utf8), more: false)
            return 0
        }
        var iterator = received.makeAsyncIterator()
        let atRouter = await iterator.next()
        #expect(atRouter == [Array("client-1".utf8), WireHeader(.data, id: 9).bytes, Array("hello".utf8)])
        let atDealer = await iterator.next()
        #expect(atDealer == [WireHeader(.data, id: 9).bytes, Array("hello".utf8)])
        reactor.stop()
        await reactor.stopped()
        context.terminate()
    }

    @Test func receiveKeepsAtMostMaxPartsAndSaysSo() async throws {
        let (endpoint, directory) = try Self.privateEndpoint("parts")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = try ZMQContext()
        let reactor = try ZMQReactor(name: "test-parts")
        reactor.start()
        let (received, deliver) = AsyncStream<(Int, Bool)>.makeStream()
        _ = try await Self.onReactor(reactor) {
            let router = try ZMQSocket(context, .router)
            try router.bind(endpoint)
            let dealer = try ZMQSocket(context, .dealer)
            try dealer.connect(endpoint)
            reactor.watch(router) {
                while let (frames, truncated) = try? router.receive(maxParts: 3) { deliver.yield((frames.count, truncated)) }
            }
            reactor.onShutdown { router.close(); dealer.close() }
            for part in 0..<10 { dealer.send([UInt8(part)], more: part < 9) }
            return 0
        }
        var iterator = received.makeAsyncIterator()
        let result = await iterator.next()
        #expect(result?.0 == 3)
        #expect(result?.1 == true)
        reactor.stop()
        await reactor.stopped()
        context.terminate()
    }

    @Test func monitorReportsThePeersDisconnect() async throws {
        let (endpoint, directory) = try Self.privateEndpoint("monitor")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let context = try ZMQContext()
        let peerContext = try ZMQContext()
        let reactor = try ZMQReactor(name: "test-monitor")
        reactor.start()
        let (events, deliver) = AsyncStream<Int32>.makeStream()
        final class Peer: @unchecked Sendable { var dealer: ZMQSocket? }
        let peer = Peer()
        _ = try await Self.onReactor(reactor) {
            let router = try ZMQSocket(context, .router)
            let monitor = try router.monitor(context, events: ZMQMonitorEvent.accepted | ZMQMonitorEvent.disconnected, name: "test-\(getpid())")
            try router.bind(endpoint)
            reactor.watch(monitor) {
                while let event = try? ZMQMonitorEvent.read(monitor) { deliver.yield(event.event) }
            }
            reactor.onShutdown { monitor.close(); router.close() }
            let dealer = try ZMQSocket(peerContext, .dealer)
            try dealer.connect(endpoint)
            peer.dealer = dealer
            return 0
        }
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == ZMQMonitorEvent.accepted)
        _ = try await Self.onReactor(reactor) { peer.dealer?.close(); return 0 }
        peerContext.terminate()
        #expect(await iterator.next() == ZMQMonitorEvent.disconnected)
        reactor.stop()
        await reactor.stopped()
        context.terminate()
    }

    @Test func stopRunsShutdownHooksAndDropsLaterWork() async throws {
        let reactor = try ZMQReactor(name: "test-stop")
        reactor.start()
        let hookRan = Mutex(false)
        _ = try await Self.onReactor(reactor) {
            reactor.onShutdown { hookRan.withLock { $0 = true } }
            return 0
        }
        reactor.stop()
        await reactor.stopped()
        #expect(hookRan.withLock { $0 })
        let late = Mutex(false)
        reactor.execute { late.withLock { $0 = true } }
        await reactor.stopped()
        #expect(!late.withLock { $0 })
    }

    /// Work handed to a stopped reactor is refused loudly, so a caller waiting on it can stop
    /// waiting (issue 8: `status()` after shutdown used to hang forever).
    @Test func execute_afterStop_returnsFalse_andRunThrowsInsteadOfHanging() async throws {
        let reactor = try ZMQReactor(name: "test-refuse")
        reactor.start()
        #expect(try await reactor.run { 7 } == 7)
        reactor.stop()
        await reactor.stopped()
        #expect(!reactor.execute {})
        let refused = Task { () -> Bool in
            do { _ = try await reactor.run { 1 }; return false } catch { return true }
        }
        #expect(await refused.value)
    }

    /// zmq_ctx_term must run once, even when two threads terminate at the same moment.
    @Test func contextTerminate_fromManyThreadsAtOnce_terminatesOnce() async throws {
        for _ in 0..<20 {
            let context = try ZMQContext()
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { context.terminate() } }
            }
        }
    }

    /// A frame made from an array holds its own copy of the bytes.
    @Test func frameFromArray_holdsACopy() {
        var bytes: [UInt8] = Array(0..<200)
        let frame = ZMQFrame(bytes)
        bytes[0] = 99
        #expect(frame.bytes == Array(0..<200))
        #expect(ZMQFrame([]).count == 0)
    }
}
