import Logging
import PeerpoolTestSupport

/// Records an endpoint's log lines (message and metadata) so a test can wait for one event
/// instead of guessing how long it takes. One reader at a time; keeps the last 4,096 lines.
final class LogCapture: Sendable {
    private let lines: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation

    init() {
        (lines, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(4096))
    }

    /// A logger at `.debug` that writes here.
    var logger: Logger {
        let continuation = self.continuation
        var logger = Logger(label: "peerpool.quic.test") { _ in Handler(continuation: continuation) }
        logger.logLevel = .debug
        return logger
    }

    /// The next line containing `text`, or nil if none came within `timeout`.
    func line(containing text: String, within timeout: Duration) async -> String? {
        let lines = self.lines
        return try? await withDeadline(timeout) {
            for await line in lines where line.contains(text) { return line }
            return nil
        } ?? nil
    }

    private struct Handler: LogHandler {
        let continuation: AsyncStream<String>.Continuation
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let fields = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            continuation.yield("\(event.message) \(fields)")
        }
    }
}
