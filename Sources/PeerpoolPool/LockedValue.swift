import NIOConcurrencyHelpers

/// A value behind a lock, for the few fields touched from more than one task.
final class LockedValue<Value: Sendable>: Sendable {
    private let lock: NIOLockedValueBox<Value>
    init(_ value: Value) { lock = NIOLockedValueBox(value) }
    func withValue<T>(_ body: (inout Value) -> T) -> T { lock.withLockedValue(body) }
}

extension LockedValue {
    /// Takes the optional value out, leaving nil.
    func take<T>() -> T? where Value == T? {
        withValue { value in
            defer { value = nil }
            return value
        }
    }
}
