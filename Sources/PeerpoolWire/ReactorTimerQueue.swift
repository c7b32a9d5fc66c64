import HeapModule

/// A reactor's pending timers: a min-heap of deadlines beside the bodies by id.
///
/// Why a heap with lazy removal: a worker arms one timer per OPEN (its deadline) and cancels it
/// when the answer comes, so with thousands of opens pending a sorted array paid O(n) for each
/// arm and each cancel. Here arming is O(log n) and cancelling O(1): it drops the body, and the
/// heap entry is skipped when it reaches the top. Cancelled entries never outnumber live ones
/// by much: the heap is rebuilt from the live ones when they would.
///
/// Timers due at the same instant run in the order they were armed.
package struct ReactorTimerQueue<Body> {
    private struct Entry: Comparable {
        var deadline: ContinuousClock.Instant
        var id: UInt64

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            (lhs.deadline, lhs.id) < (rhs.deadline, rhs.id)
        }
    }

    private var heap = Heap<Entry>()
    private var live: [UInt64: (deadline: ContinuousClock.Instant, body: Body)] = [:]
    private var lastID: UInt64 = 0

    package init() {}

    /// Live (armed, not yet run or cancelled) timers.
    package var count: Int { live.count }

    /// Heap entries, cancelled ones included; for tests of the rebuild.
    package var storedEntries: Int { heap.count }

    /// Arms a timer and returns its id (never 0, never reused).
    package mutating func schedule(at deadline: ContinuousClock.Instant, _ body: Body) -> UInt64 {
        lastID += 1
        heap.insert(Entry(deadline: deadline, id: lastID))
        live[lastID] = (deadline, body)
        return lastID
    }

    /// Disarms a timer; one that ran or was cancelled already is ignored.
    package mutating func cancel(_ id: UInt64) {
        guard live.removeValue(forKey: id) != nil else { return }
        if heap.count > 64 && heap.count > 2 * live.count { rebuild() }
    }

    /// The earliest live deadline.
    package mutating func nextDeadline() -> ContinuousClock.Instant? {
        dropCancelledTop()
        return heap.min?.deadline
    }

    /// Removes and returns the earliest timer due at `now`, if any.
    package mutating func popDue(now: ContinuousClock.Instant) -> Body? {
        dropCancelledTop()
        guard let first = heap.min, first.deadline <= now else { return nil }
        heap.removeMin()
        return live.removeValue(forKey: first.id)?.body
    }

    /// Drops every timer.
    package mutating func removeAll() {
        heap = Heap()
        live = [:]
    }

    private mutating func dropCancelledTop() {
        while let first = heap.min, live[first.id] == nil { heap.removeMin() }
    }

    private mutating func rebuild() {
        heap = Heap(live.map { Entry(deadline: $0.value.deadline, id: $0.key) })
    }
}
