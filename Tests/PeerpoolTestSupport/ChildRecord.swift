import Foundation
import Synchronization

/// What a `TestChild` printed and how it ended: written by the threads reading its pipes and by
/// Foundation's termination handler, read and waited on by tests. Holds no reference to the
/// `TestChild`, so releasing that still runs its `deinit` (which kills the child) while the
/// readers are blocked in read(2).
///
/// Every wait is an event, not a poll: a change (a line, an end of output, the exit) resumes
/// the waiting continuations, and each waiter checks again under the lock. Unread lines are
/// only ever taken by the waiting task itself, so a wait that times out loses no line.
final class ChildRecord: Sendable {
    enum Stream: Sendable {
        case standardOutput, standardError

        var label: String { self == .standardOutput ? "stdout" : "stderr" }
    }

    struct State {
        var stdout: LineSplitter
        var stderr: LineSplitter
        /// Standard output lines no test took yet, oldest first.
        var unread: [String] = []
        /// Both streams' last lines, marked `stdout:` or `stderr:`. Trimmed to the limit in
        /// batches; `transcript` shows the last `transcriptLimit`.
        var transcript: [String] = []
        var unreadOverflowed = false
        /// `run`'s raw output, each up to `collectLimit` bytes.
        var collectedStdout: [UInt8] = []
        var collectedStderr: [UInt8] = []
        var collectionTruncated = false
        /// Pipes not yet at EOF.
        var openStreams: Int
        /// Standard output reached EOF: no more lines will be queued.
        var standardOutputEnded = false
        var termination: TestChild.Termination?
        /// Counts changes, so a waiter can tell whether one happened since it looked.
        var generation: UInt64 = 0
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var lastWaiter: UInt64 = 0

        var outputEnded: Bool { openStreams == 0 }
    }

    let state: Mutex<State>
    private let transcriptLimit: Int
    private let unreadLimit: Int
    private let lineLimit: Int
    /// Whether standard output lines are queued for `nextLine` (not for `run`, which collects).
    private let queuesLines: Bool
    private let collectLimit: Int?
    /// Signalled once the child exited: for the one blocking wait, in `TestChild.deinit`.
    let exited = DispatchSemaphore(value: 0)

    init(_ command: TestChild.Command, streams: Int, collectLimit: Int?) {
        state = Mutex(State(
            stdout: LineSplitter(limit: command.lineLimit), stderr: LineSplitter(limit: command.lineLimit),
            openStreams: streams))
        transcriptLimit = command.transcriptLimit
        unreadLimit = command.unreadLimit
        lineLimit = command.lineLimit
        queuesLines = collectLimit == nil
        self.collectLimit = collectLimit
    }

    // MARK: Writers

    /// Bytes from one of the child's pipes (a reading thread).
    func receive(_ bytes: ArraySlice<UInt8>, from stream: Stream) {
        update { state in
            if let collectLimit {
                let room = max(0, collectLimit - (stream == .standardOutput ? state.collectedStdout : state.collectedStderr).count)
                if bytes.count > room { state.collectionTruncated = true }
                if stream == .standardOutput {
                    state.collectedStdout += bytes.prefix(room)
                } else {
                    state.collectedStderr += bytes.prefix(room)
                }
            }
            let pieces = stream == .standardOutput ? state.stdout.lines(in: bytes) : state.stderr.lines(in: bytes)
            for piece in pieces { record(piece, from: stream, in: &state) }
        }
    }

    /// EOF on one of the child's pipes (a reading thread).
    func end(_ stream: Stream) {
        update { state in
            let pieces = stream == .standardOutput ? state.stdout.finish() : state.stderr.finish()
            for piece in pieces { record(piece, from: stream, in: &state) }
            state.openStreams -= 1
            if stream == .standardOutput { state.standardOutputEnded = true }
        }
    }

    /// The child exited and Foundation reaped it (its termination handler).
    func exited(_ termination: TestChild.Termination) {
        update { $0.termination = termination }
        exited.signal()
    }

    private func record(_ piece: String?, from stream: Stream, in state: inout State) {
        guard let line = piece else {
            note("\(stream.label): [dropped a line longer than \(lineLimit) bytes]", in: &state)
            return
        }
        note("\(stream.label): \(line)", in: &state)
        guard stream == .standardOutput, queuesLines else { return }
        if state.unread.count < unreadLimit {
            state.unread.append(line)
        } else if !state.unreadOverflowed {
            state.unreadOverflowed = true
            note("[\(unreadLimit) stdout lines wait unread: later ones are dropped]", in: &state)
        }
    }

    private func note(_ line: String, in state: inout State) {
        state.transcript.append(line)
        if state.transcript.count >= 2 * transcriptLimit {
            state.transcript.removeFirst(state.transcript.count - transcriptLimit)
        }
    }

    /// Applies `body` and wakes every waiter to look again.
    private func update(_ body: (inout State) -> Void) {
        let waiters = state.withLock { state in
            body(&state)
            state.generation &+= 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Readers

    /// The last `transcriptLimit` lines, one per line.
    var transcript: String {
        state.withLock { $0.transcript.suffix(transcriptLimit).joined(separator: "\n") }
    }

    /// `check`'s first non-nil answer: asked now and after every change, until `deadline`. Nil
    /// once the deadline passed or the task is cancelled.
    func wait<T: Sendable>(until deadline: ContinuousClock.Instant, for check: (inout State) -> T?) async -> T? {
        while true {
            let (answer, generation) = state.withLock { state in (check(&state), state.generation) }
            if let answer { return answer }
            let remaining = deadline - .now
            guard remaining > .zero, !Task.isCancelled else { return nil }
            _ = try? await withDeadline(remaining) { await self.change(after: generation) }
        }
    }

    /// Returns once `generation` moved past `seen`, or the task is cancelled.
    private func change(after seen: UInt64) async {
        let id = state.withLock { state in
            state.lastWaiter &+= 1
            return state.lastWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state in
                    // Cancelled before we got here: the handler below found nothing to resume.
                    guard state.generation == seen, !Task.isCancelled else { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
