/// A value that only its reactor's thread may touch, checked at every access.
///
/// The reactor's contract — its sockets and the state around them belong to its thread — used to
/// be a comment on `@unchecked Sendable` classes. This box makes it a runtime check instead, as
/// NIO's `NIOLoopBound` does for an event loop: the box itself is `Sendable` (so it can be held by
/// `Sendable` types and captured in `@Sendable` closures), and reading or writing `value` anywhere
/// but on `reactor`'s thread stops the process with a precondition failure rather than racing.
///
/// From another thread, hop with `run` (waits for a result) or `execute` (fire and forget): the
/// one way onto the reactor for bound state.
///
/// The value may be created on any thread (before the reactor starts, typically): it is handed
/// over (`sending`) and never touched again by the creating thread.
@dynamicMemberLookup
public struct ReactorBound<Value>: @unchecked Sendable {
    private final class Box {
        var value: Value
        init(_ value: Value) { self.value = value }
    }

    public let reactor: ZMQReactor
    private let box: Box

    public init(_ value: sending Value, reactor: ZMQReactor) {
        self.reactor = reactor
        self.box = Box(value)
    }

    /// The value. *Reactor thread*: traps anywhere else.
    public var value: Value {
        // `_read`, not `get`: `loop.value.field` then borrows the value in place instead of
        // copying the whole state (retaining every reference in it) to read one field.
        _read {
            check()
            yield box.value
        }
        nonmutating _modify {
            check()
            yield &box.value
        }
    }

    public subscript<T>(dynamicMember keyPath: WritableKeyPath<Value, T>) -> T {
        _read {
            check()
            yield box.value[keyPath: keyPath]
        }
        nonmutating _modify {
            check()
            yield &box.value[keyPath: keyPath]
        }
    }

    public subscript<T>(dynamicMember keyPath: KeyPath<Value, T>) -> T {
        check()
        return box.value[keyPath: keyPath]
    }

    /// Runs `body` with the value on the reactor thread and returns its result; throws
    /// `ZMQReactorStopped` (instead of waiting forever) once the reactor has stopped.
    public func run<T: Sendable>(_ body: @escaping @Sendable (Value) -> T) async throws(ZMQReactorStopped) -> T {
        try await reactor.run { body(self.value) }
    }

    /// Queues `body` with the value on the reactor thread. Returns false, without running it,
    /// once the reactor was stopped (see `ZMQReactor.execute`).
    @discardableResult
    public func execute(_ body: @escaping @Sendable (Value) -> Void) -> Bool {
        reactor.execute { body(self.value) }
    }

    private func check() {
        precondition(reactor.isOnReactorThread, "state bound to the \(reactor.name) reactor used off its thread")
    }
}
