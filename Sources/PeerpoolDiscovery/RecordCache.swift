import PeerpoolIdentity

/// Answers about peers kept until their TTL runs out, at most `capacity` of them: when full,
/// expired ones go first, then the soonest to expire. A value owned by one resolver actor; the
/// clock is passed in, so tests move time by hand.
struct RecordCache<Value: Sendable>: Sendable {
    typealias Instant = ContinuousClock.Instant

    let capacity: Int
    private var entries: [ID52: (value: Value, expires: Instant)] = [:]

    init(capacity: Int) {
        self.capacity = capacity
    }

    var count: Int { entries.count }

    func value(for peer: ID52, now: Instant) -> Value? {
        guard let entry = entries[peer], now < entry.expires else { return nil }
        return entry.value
    }

    mutating func store(_ value: Value, for peer: ID52, ttl: Duration, now: Instant) {
        guard ttl > .zero, capacity > 0 else { return }
        if entries[peer] == nil, entries.count >= capacity {
            entries = entries.filter { $0.value.expires > now }
            if entries.count >= capacity, let soonest = entries.min(by: { $0.value.expires < $1.value.expires })?.key {
                entries[soonest] = nil
            }
        }
        entries[peer] = (value, now + ttl)
    }

    mutating func removeAll() { entries.removeAll() }
}
