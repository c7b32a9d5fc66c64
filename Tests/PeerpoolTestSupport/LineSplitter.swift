/// Cuts a stream of bytes into lines (without their newlines), dropping every line longer than
/// `limit` bytes whole: a runaway child cannot fill memory, and the tail of an over-long line
/// never poses as a line of its own.
struct LineSplitter {
    /// A line, or nil where an over-long line was dropped.
    typealias Piece = String?

    let limit: Int
    private var pending: [UInt8] = []
    /// Inside an over-long line: its bytes are dropped up to its newline.
    private var discarding = false

    init(limit: Int) {
        self.limit = limit
    }

    /// The lines that `bytes` completes.
    mutating func lines(in bytes: ArraySlice<UInt8>) -> [Piece] {
        var pieces: [Piece] = []
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            if discarding || pending.count + (newline - start) > limit {
                pieces.append(nil)
            } else {
                pending += bytes[start..<newline]
                pieces.append(String(decoding: pending, as: UTF8.self))
            }
            pending.removeAll(keepingCapacity: true)
            discarding = false
            start = newline + 1
        }
        if !discarding {
            pending += bytes[start...]
            if pending.count > limit {
                pending = []
                discarding = true
            }
        }
        return pieces
    }

    /// The last line, had it no newline, at the end of the stream.
    mutating func finish() -> [Piece] {
        defer {
            pending = []
            discarding = false
        }
        if discarding { return [nil] }
        return pending.isEmpty ? [] : [String(decoding: pending, as: UTF8.self)]
    }
}
