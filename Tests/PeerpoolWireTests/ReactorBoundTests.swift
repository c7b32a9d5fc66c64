import Foundation
import Testing
@testable import PeerpoolWire

/// The checked box: usable on its reactor's thread, refused (the process traps) anywhere else.
@Suite(.timeLimit(.minutes(3)))
struct ReactorBoundTests {
    @Test func run_mutatesOnTheReactorThread_andReturnsTheResult() async throws {
        let reactor = try ZMQReactor(name: "test-bound")
        reactor.start()
        let bound = ReactorBound([Int](), reactor: reactor)
        for index in 0..<100 { bound.execute { _ in bound.value.append(index) } }
        let (values, onThread) = try await bound.run { values in (values, reactor.isOnReactorThread) }
        #expect(values == Array(0..<100))
        #expect(onThread)
        reactor.stop()
        await reactor.stopped()
        await #expect(throws: ZMQReactorStopped.self) { try await bound.run { $0.count } }
    }

    @Test func dynamicMember_readsAndWritesOnTheReactorThread() async throws {
        struct Counters { var opens = 0; var streams = 0 }
        let reactor = try ZMQReactor(name: "test-bound-member")
        reactor.start()
        let bound = ReactorBound(Counters(), reactor: reactor)
        let total = try await bound.run { _ in
            bound.opens += 2
            bound.streams = 3
            return bound.opens + bound.streams
        }
        #expect(total == 5)
        reactor.stop()
        await reactor.stopped()
    }

    @Test func access_offTheReactorThread_traps() async throws {
        await #expect(processExitsWith: .failure) {
            let reactor = try ZMQReactor(name: "test-bound-trap")
            reactor.start()
            let bound = ReactorBound(0, reactor: reactor)
            bound.value += 1  // this test's thread, not the reactor's: a precondition failure
        }
    }
}
