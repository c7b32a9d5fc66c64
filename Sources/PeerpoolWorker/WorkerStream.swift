import NIOCore
import Synchronization

/// The hand-over point between the worker's reactor thread and the two Swift tasks that move one
/// stream's bytes: credit and an outbox for peer → client, a write queue for client → peer.
///
/// The reactor thread adds (`addCredit`, `enqueue`, `enqueueFinish`, `close`) and empties the
/// outbox (`takeOutbox`); the tasks take (`takeCredit`, `nextWrites`), suspending while there is
/// nothing to take, and fill the outbox (`post`). One lock, held for a few instructions; no task
/// and no closure per message. Each side has at most one waiter: the stream's one reader task
/// and one writer task.
///
/// Bounded: the write queue holds at most the window the worker granted the client (the reactor
/// refuses DATA beyond it before enqueueing); the outbox holds at most the client's credit; the
/// reader holds at most one chunk it read from QUIC while it waits for credit.
final class WorkerStream: Sendable {
    /// What the writer task gets from `nextWrites`.
    struct Writes: Sendable {
        var buffers: [ByteBuffer]
        /// The client finished: call `finish()` after writing `buffers`.
        var finish: Bool
    }

    private struct State {
        /// Bytes of DATA the client can still take (peer → client).
        var credit: Int
        var creditWaiter: CheckedContinuation<Bool, Never>?
        /// Peer → client bytes (credit already taken) waiting for the reactor to send them.
        var outbox: [ByteBuffer] = []
        /// A flush of the outbox is queued on the reactor.
        var flushQueued = false
        var writes: [ByteBuffer] = []
        var finishQueued = false
        var writeWaiter: CheckedContinuation<Writes?, Never>?
        var closed = false
    }

    /// The supervisor's stream id.
    let id: UInt64
    /// Peer → client window: the most credit the client can ever hold.
    let window: Int
    private let state: Mutex<State>

    init(id: UInt64, window: Int) {
        self.id = id
        self.window = window
        self.state = Mutex(State(credit: window))
    }

    // MARK: Reactor side

    /// CREDIT(n) from the client. False (and nothing changes) when it would lift the credit
    /// above the window: the client credited bytes it never received.
    @discardableResult
    func addCredit(_ bytes: Int) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Bool, Never>?) in
            guard !state.closed else { return (true, nil) }
            guard bytes >= 0, bytes <= window - state.credit else { return (false, nil) }
            state.credit += bytes
            guard state.credit > 0 else { return (true, nil) }
            defer { state.creditWaiter = nil }
            return (true, state.creditWaiter)
        }
        waiter?.resume(returning: true)
        return accepted
    }

    /// DATA from the client, in order. The caller checked the window.
    func enqueue(_ buffer: ByteBuffer) {
        let handOver = state.withLock { state -> (CheckedContinuation<Writes?, Never>, Writes)? in
            guard !state.closed else { return nil }
            state.writes.append(buffer)
            return Self.takeWrites(&state)
        }
        if let (waiter, writes) = handOver { waiter.resume(returning: writes) }
    }

    /// FINISH from the client: the writer finishes the QUIC stream after what is queued.
    func enqueueFinish() {
        let handOver = state.withLock { state -> (CheckedContinuation<Writes?, Never>, Writes)? in
            guard !state.closed else { return nil }
            state.finishQueued = true
            return Self.takeWrites(&state)
        }
        if let (waiter, writes) = handOver { waiter.resume(returning: writes) }
    }

    /// The stream is gone: both tasks stop at their next wait. Any thread, any number of times.
    func close() {
        let (creditWaiter, writeWaiter) = state.withLock { state in
            state.closed = true
            state.writes = []
            state.outbox = []
            defer {
                state.creditWaiter = nil
                state.writeWaiter = nil
            }
            return (state.creditWaiter, state.writeWaiter)
        }
        creditWaiter?.resume(returning: false)
        writeWaiter?.resume(returning: nil)
    }

    /// Everything the reader posted since the last call, in order.
    func takeOutbox() -> [ByteBuffer] {
        state.withLock { state in
            state.flushQueued = false
            defer { state.outbox = [] }
            return state.outbox
        }
    }

    /// If the writer waits and there is something for it, takes it all for the writer.
    private static func takeWrites(_ state: inout State) -> (CheckedContinuation<Writes?, Never>, Writes)? {
        guard let waiter = state.writeWaiter else { return nil }
        state.writeWaiter = nil
        let writes = Writes(buffers: state.writes, finish: state.finishQueued)
        state.writes = []
        state.finishQueued = false
        return (waiter, writes)
    }

    // MARK: Task side

    /// Waits until the client holds credit; false once the stream is closed (or the task is
    /// cancelled). Does not take any.
    func waitForCredit() async -> Bool {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate = state.withLock { state -> Bool? in
                    if state.closed { return false }
                    if state.credit > 0 { return true }
                    precondition(state.creditWaiter == nil, "stream \(id) has two readers")
                    state.creditWaiter = continuation
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            close()
        }
    }

    /// Takes up to `wanted` bytes of credit, waiting for some if there is none; nil once the
    /// stream is closed.
    func takeCredit(upTo wanted: Int) async -> Int? {
        while true {
            let taken = state.withLock { state -> Int? in
                guard !state.closed else { return nil }
                let taken = min(wanted, state.credit)
                state.credit -= taken
                return taken
            }
            guard let taken else { return nil }
            if taken > 0 { return taken }
            guard await waitForCredit() else { return nil }
        }
    }

    /// Queues peer → client bytes (within the credit taken) for the reactor. True when the caller
    /// must queue a flush: none is queued yet. While one is, further bytes join the outbox and go
    /// out with it, so a busy reactor sends fewer, larger DATA frames.
    func post(_ bytes: ByteBuffer) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.outbox.append(bytes)
            if state.flushQueued { return false }
            state.flushQueued = true
            return true
        }
    }

    /// Everything the client sent since the last call, waiting if nothing is queued; nil once
    /// the stream is closed (or the task is cancelled).
    func nextWrites() async -> Writes? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Writes?, Never>) in
                let immediate = state.withLock { state -> Writes?? in
                    if state.closed { return .some(nil) }
                    if !state.writes.isEmpty || state.finishQueued {
                        let writes = Writes(buffers: state.writes, finish: state.finishQueued)
                        state.writes = []
                        state.finishQueued = false
                        return .some(writes)
                    }
                    precondition(state.writeWaiter == nil, "stream \(id) has two writers")
                    state.writeWaiter = continuation
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            close()
        }
    }
}
