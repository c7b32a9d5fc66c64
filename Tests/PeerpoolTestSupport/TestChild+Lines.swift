extension TestChild {
    /// What `nextLine` does with the unread lines before the one it returns.
    public enum EarlierLines: Sendable {
        /// They stay unread, for a later wait: a test server's other reports.
        case kept
        /// They are dropped (the transcript keeps them): the line returned is the next one of
        /// its kind, and whatever came before it is past.
        case dropped
    }

    /// The first unread standard output line that `matches` accepts, taken from the unread
    /// lines, waiting at most `timeout`. `description` names the line in errors ("READY":
    /// "printed no READY line within 20 seconds"). Throws `.timedOut` or, if standard output
    /// ends first, `.outputEnded`, both with the transcript; `CancellationError` if cancelled.
    /// A wait that fails takes no line.
    public func nextLine(
        matching matches: (String) -> Bool = { _ in true }, within timeout: Duration, _ description: String = "",
        earlier: EarlierLines = .kept
    ) async throws -> String {
        try await take(within: timeout, description.isEmpty ? "line" : "\(description) line") { unread in
            guard let index = unread.firstIndex(where: matches) else {
                if earlier == .dropped { unread.removeAll() }
                return nil
            }
            let line = unread[index]
            unread.removeSubrange(earlier == .dropped ? unread.startIndex...index : index...index)
            return line
        }
    }

    /// The rest of the first unread `<keyword> <value>` standard output line, the form the
    /// Python test peers report in ("READY 4433" → "4433"), taken like `nextLine`.
    public func value(of keyword: String, within timeout: Duration, earlier: EarlierLines = .kept) async throws -> String {
        let prefix = keyword + " "
        let line = try await nextLine(matching: { $0.hasPrefix(prefix) }, within: timeout, keyword, earlier: earlier)
        return String(line.dropFirst(prefix.count))
    }

    /// The next `count` unread standard output lines, in order, waiting at most `timeout` for
    /// all of them; throws like `nextLine`, and then takes none.
    public func nextLines(_ count: Int, within timeout: Duration, _ description: String = "") async throws -> [String] {
        try await take(within: timeout, "\(count) \(description.isEmpty ? "" : description + " ")lines") { unread in
            guard unread.count >= count else { return nil }
            defer { unread.removeFirst(count) }
            return Array(unread.prefix(count))
        }
    }

    /// Takes every unread standard output line `matches` accepts, without waiting; the others
    /// stay unread.
    public func takeUnread(matching matches: (String) -> Bool = { _ in true }) -> [String] {
        record.state.withLock { state in
            let taken = state.unread.filter(matches)
            state.unread.removeAll(where: matches)
            return taken
        }
    }

    /// The last lines the child wrote (`Command.transcriptLimit`), each marked `stdout:` or
    /// `stderr:`.
    public var transcript: String { record.transcript }

    /// The transcript once the child's output ended (it exited), waiting at most `timeout`: for
    /// failure messages, so they show the child's last words.
    public func finalTranscript(within timeout: Duration = .seconds(3)) async -> String {
        _ = await record.wait(until: .now + timeout) { $0.outputEnded ? true : nil }
        return transcript
    }

    /// `take`'s first non-nil result on the unread lines, waiting at most `timeout`; `what`
    /// names what was awaited in errors.
    private func take<T: Sendable>(
        within timeout: Duration, _ what: String, _ take: (inout [String]) -> T?
    ) async throws -> T {
        let found = await record.wait(until: .now + timeout) { state -> Found<T>? in
            if let taken = take(&state.unread) { return .taken(taken) }
            return state.standardOutputEnded ? .ended : nil
        }
        switch found {
        case .taken(let value)?:
            return value
        case .ended?:
            throw TestChildError(.outputEnded, child: name, "\(name) exited without printing the \(what) awaited",
                                 transcript: await finalTranscript())
        case nil:
            try Task.checkCancellation()
            throw TestChildError(.timedOut, child: name, "\(name) printed no \(what) within \(timeout)", transcript: transcript)
        }
    }
}

/// What a wait for unread lines found: what it took, or the end of standard output.
private enum Found<T: Sendable>: Sendable {
    case taken(T)
    case ended
}
