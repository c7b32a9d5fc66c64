import HeapModule

/// When each pending open's deadline comes, ordered, so a tick looks only at the opens that
/// are due instead of every pending one (10,000 per client may wait).
///
/// Entries are not removed when their open is answered: a tick skips ids that are gone, and the
/// heap is rebuilt from the pending opens when stale entries would outnumber them, so its size
/// stays within about twice the pending count.
struct OpenDeadlines {
    struct Entry: Comparable {
        var deadline: ContinuousClock.Instant
        var id: UInt64

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            (lhs.deadline, lhs.id) < (rhs.deadline, rhs.id)
        }
    }

    private var heap = Heap<Entry>()

    /// Entries held, stale ones included.
    var count: Int { heap.count }

    mutating func add(_ deadline: ContinuousClock.Instant, id: UInt64) {
        heap.insert(Entry(deadline: deadline, id: id))
    }

    /// Removes and returns every entry due at `now`, earliest first.
    mutating func popDue(now: ContinuousClock.Instant) -> [Entry] {
        var due: [Entry] = []
        while let first = heap.min, first.deadline <= now { due.append(heap.removeMin()) }
        return due
    }

    /// Replaces the entries with `live`'s when stale ones dominate (more than twice the live
    /// count, plus 1,024 so small tables never rebuild).
    mutating func compact(liveCount: Int, live: () -> [Entry]) {
        guard heap.count > 2 * liveCount + 1_024 else { return }
        heap = Heap(live())
    }
}
