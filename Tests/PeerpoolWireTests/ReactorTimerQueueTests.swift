import Testing
@testable import PeerpoolWire

@Suite struct ReactorTimerQueueTests {
    let start = ContinuousClock.now

    private func drain(_ queue: inout ReactorTimerQueue<Int>, at now: ContinuousClock.Instant) -> [Int] {
        var ran: [Int] = []
        while let body = queue.popDue(now: now) { ran.append(body) }
        return ran
    }

    @Test func dueTimers_runByDeadline_andInArmingOrderAtTheSameInstant() {
        var queue = ReactorTimerQueue<Int>()
        _ = queue.schedule(at: start + .milliseconds(30), 3)
        _ = queue.schedule(at: start + .milliseconds(10), 1)
        _ = queue.schedule(at: start + .milliseconds(20), 2)
        _ = queue.schedule(at: start + .milliseconds(10), 11)
        #expect(queue.nextDeadline() == start + .milliseconds(10))
        #expect(drain(&queue, at: start + .milliseconds(20)) == [1, 11, 2])
        #expect(queue.nextDeadline() == start + .milliseconds(30))
        #expect(drain(&queue, at: start + .milliseconds(29)) == [])
        #expect(drain(&queue, at: start + .milliseconds(30)) == [3])
        #expect(queue.nextDeadline() == nil)
        #expect(queue.count == 0)
    }

    @Test func cancelledTimers_neverRun_andDoNotHoldUpTheNextDeadline() {
        var queue = ReactorTimerQueue<Int>()
        let first = queue.schedule(at: start + .milliseconds(1), 1)
        _ = queue.schedule(at: start + .milliseconds(5), 5)
        queue.cancel(first)
        queue.cancel(first)  // twice: ignored
        #expect(queue.count == 1)
        #expect(queue.nextDeadline() == start + .milliseconds(5))
        #expect(drain(&queue, at: start + .seconds(1)) == [5])
    }

    @Test func cancellingATimerThatRan_isIgnored() {
        var queue = ReactorTimerQueue<Int>()
        let id = queue.schedule(at: start, 1)
        #expect(drain(&queue, at: start) == [1])
        queue.cancel(id)
        let next = queue.schedule(at: start, 2)
        #expect(next != id)
        #expect(drain(&queue, at: start) == [2])
    }

    /// 10,000 armed and all but every hundredth cancelled, as a worker's opens answered before
    /// their deadlines: the heap stays near the live count instead of keeping every entry.
    @Test func manyCancellations_keepTheHeapBoundedByTheLiveTimers() {
        var queue = ReactorTimerQueue<Int>()
        var ids: [UInt64] = []
        for index in 0..<10_000 {
            ids.append(queue.schedule(at: start + .milliseconds(index), index))
        }
        for (index, id) in ids.enumerated() where index % 100 != 0 { queue.cancel(id) }
        #expect(queue.count == 100)
        #expect(queue.storedEntries <= max(64, 2 * queue.count) + 1)
        #expect(drain(&queue, at: start + .seconds(60)) == Array(stride(from: 0, to: 10_000, by: 100)))
    }

    @Test func removeAll_dropsEverything() {
        var queue = ReactorTimerQueue<Int>()
        for index in 0..<10 { _ = queue.schedule(at: start, index) }
        queue.removeAll()
        #expect(queue.count == 0)
        #expect(queue.nextDeadline() == nil)
        #expect(drain(&queue, at: start + .seconds(1)) == [])
    }
}
