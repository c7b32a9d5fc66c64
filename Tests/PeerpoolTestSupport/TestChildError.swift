import PeerpoolErrors

/// What a `TestChild` throws: a code to match, the child's name, and a message that ends with
/// the tail of the child's transcript, so a failed wait shows what the child said instead.
public struct TestChildError: PeerpoolError {
    public typealias Code = ErrorCode<Self>

    public let code: Code
    /// The child's `Command.name`.
    public let child: String
    public let message: String
    public let location: SourceLocation

    /// `message` about `child`, followed by `transcript` (when given) under a header naming the
    /// child, and a hint when the transcript shows the test venv lacks a Python module.
    public init(
        _ code: Code, child: String, _ message: String, transcript: String? = nil,
        file: String = #fileID, line: Int = #line
    ) {
        self.code = code
        self.child = child
        var text = message
        if let transcript {
            if transcript.contains("No module named") {
                text += " (a Python module is missing: run `deploy/setup.sh --test`)"
            }
            text += "\n--- \(child) output ---\n\(transcript)"
        }
        self.message = text
        self.location = SourceLocation(fileID: file, line: line)
    }
}

extension ErrorCode where Domain == TestChildError {
    /// The executable could not be started: missing, not executable, the test venv not set up.
    public static let startFailed: Self = "start_failed"
    /// A wait for a line passed its deadline with the child still running.
    public static let timedOut: Self = "timed_out"
    /// The child's standard output ended (it exited) before the awaited line.
    public static let outputEnded: Self = "output_ended"
    /// The child printed something its fixture cannot read (a bad LISTENING line).
    public static let unexpectedOutput: Self = "unexpected_output"
    /// Writing to the child's standard input failed: closed, never a pipe, or the child gone.
    public static let inputClosed: Self = "input_closed"
}
