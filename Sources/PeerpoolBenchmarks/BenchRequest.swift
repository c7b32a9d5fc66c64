import NIOCore

/// The request line that opens every stream to a `peerpool-bench peer`.
///
/// ```
/// SOURCE <n>\n   the peer writes n bytes, then finishes
/// SINK\n         the peer reads to the end, then writes the decimal count and "\n"
/// ECHO\n         the peer writes back everything it reads, finishing when we finish
/// ```
/// Bytes after the newline are payload (SINK counts them, ECHO echoes them).
enum BenchRequest: Equatable, Sendable {
    case source(Int)
    case sink
    case echo

    /// Longest request line, newline included. Past it the request is malformed, so a peer
    /// that never sends a newline cannot make us buffer without bound.
    static let maximumLineLength = 1024

    /// Parses one line (without its newline). Nil for anything else, including a negative or
    /// oversized count.
    init?(line: some Collection<UInt8>) {
        let text = String(decoding: line, as: UTF8.self)
        switch text {
        case "SINK": self = .sink
        case "ECHO": self = .echo
        default:
            let prefix = "SOURCE "
            guard text.hasPrefix(prefix) else { return nil }
            let digits = text.dropFirst(prefix.count)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let count = Int(digits) else {
                return nil
            }
            self = .source(count)
        }
    }

    /// What the stream's opening bytes hold once `buffered` has them.
    enum Scan: Equatable {
        /// A request, and where its payload starts in `buffered`.
        case complete(BenchRequest, payloadOffset: Int)
        /// No newline yet, and still room for one: read more.
        case needMore
        /// Too long or not a request.
        case malformed
    }

    /// Looks for the request line at the start of `buffered` (the readable bytes).
    static func scan(_ buffered: ByteBuffer) -> Scan {
        let window = buffered.readableBytesView.prefix(maximumLineLength)
        guard let newline = window.firstIndex(of: UInt8(ascii: "\n")) else {
            return buffered.readableBytes >= maximumLineLength ? .malformed : .needMore
        }
        guard let request = BenchRequest(line: window[..<newline]) else { return .malformed }
        return .complete(request, payloadOffset: newline + 1 - window.startIndex)
    }
}
