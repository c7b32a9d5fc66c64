/// One stream open at a time: fastn-net's reference holds a lock per connection from the
/// request to the peer's `ack`. The pool opens streams concurrently; `bench pool --opens` holds
/// this turn around each `getStream` to measure what that strategy costs, side by side.
actor BenchTurn {
    private var taken = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func take() async {
        if !taken {
            taken = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Hands the turn to the next waiter, if any.
    func end() {
        if waiters.isEmpty { taken = false } else { waiters.removeFirst().resume() }
    }
}
