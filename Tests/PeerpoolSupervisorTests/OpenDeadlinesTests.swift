import Testing
@testable import PeerpoolSupervisor

@Suite struct OpenDeadlinesTests {
    let start = ContinuousClock.now

    @Test func popDue_returnsOnlyWhatIsDue_earliestFirst_thenNothing() {
        var deadlines = OpenDeadlines()
        deadlines.add(start + .seconds(3), id: 3)
        deadlines.add(start + .seconds(1), id: 1)
        deadlines.add(start + .seconds(2), id: 2)
        deadlines.add(start + .seconds(1), id: 0)
        #expect(deadlines.popDue(now: start).map(\.id) == [])
        #expect(deadlines.popDue(now: start + .seconds(2)).map(\.id) == [0, 1, 2])
        #expect(deadlines.popDue(now: start + .seconds(2)).map(\.id) == [])
        #expect(deadlines.popDue(now: start + .seconds(9)).map(\.id) == [3])
        #expect(deadlines.count == 0)
    }

    /// Opens answered long before their deadlines leave entries behind; compacting keeps the heap
    /// within twice the pending count (plus 1,024) instead of growing with every open ever made.
    @Test func compact_dropsStaleEntries_onlyWhenTheyDominate() {
        var deadlines = OpenDeadlines()
        for id in 0..<5_000 { deadlines.add(start + .seconds(600), id: UInt64(id)) }
        var rebuilt = false
        deadlines.compact(liveCount: 3_000) { rebuilt = true; return [] }
        #expect(!rebuilt)
        #expect(deadlines.count == 5_000)
        let live = (0..<10).map { OpenDeadlines.Entry(deadline: start + .seconds(600), id: UInt64($0)) }
        deadlines.compact(liveCount: live.count) { live }
        #expect(deadlines.count == 10)
    }
}
