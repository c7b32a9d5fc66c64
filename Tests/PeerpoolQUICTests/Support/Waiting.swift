import Foundation

/// A counter shared between a task and the test.
actor Counter {
    private(set) var value = 0
    func add(_ n: Int) { value += n }
}
