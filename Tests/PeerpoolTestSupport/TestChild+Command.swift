import Foundation

extension TestChild {
    /// What to run and how: the executable, its arguments and environment, where its standard
    /// streams go, and the bounds on what is kept of its output.
    public struct Command: Sendable {
        /// How errors and transcripts name the child: "iroh peer", "peerpool listen".
        public var name: String
        public var executable: URL
        public var arguments: [String]
        /// The child's whole environment. Default nil: the test process's.
        public var environment: [String: String]?
        /// Default nil: the test process's working directory.
        public var workingDirectory: URL?
        /// Default `.pipe`: held open until `closeStandardInput()` or the child's end.
        public var standardInput: StandardInput = .pipe
        /// Default `.captured`: its lines go to the transcript, apart from standard output.
        public var standardError: StandardError = .captured
        /// Longer lines (in bytes, without the newline) are dropped, with a note in the
        /// transcript, so a runaway child cannot fill memory. Default 64 KiB.
        public var lineLimit = 1 << 16
        /// The transcript keeps this many of the last lines of both streams. Default 500.
        public var transcriptLimit = 500
        /// Standard output lines wait for `nextLine` up to this many; later ones are dropped,
        /// with a note in the transcript. Default 100,000.
        public var unreadLimit = 100_000

        public init(_ name: String, executable: URL, arguments: [String] = []) {
            self.name = name
            self.executable = executable
            self.arguments = arguments
        }

        /// `peerpool <arguments>`, named after its subcommand ("peerpool listen").
        public static func peerpool(_ arguments: [String]) -> Command {
            Command("peerpool \(arguments.first ?? "")", executable: peerpoolExecutable, arguments: arguments)
        }

        /// The program at `path`, named after its file ("python3", "openssl").
        public static func program(_ path: String, _ arguments: [String]) -> Command {
            let executable = URL(fileURLWithPath: path)
            return Command(executable.lastPathComponent, executable: executable, arguments: arguments)
        }
    }

    /// Where a child's standard input comes from.
    public enum StandardInput: Sendable {
        /// A pipe we hold open; `closeStandardInput()` gives the child EOF (a
        /// `--exit-on-stdin-eof` child's signal to leave, a Python server's to exit).
        case pipe
        /// /dev/null: EOF at once.
        case null
        /// These bytes, then EOF. From an unlinked file rather than a pipe, so a child that
        /// leaves them unread never blocks us writing.
        case contents(Data)
    }

    /// Where a child's standard error goes. Never inherited: what a child says belongs in its
    /// own transcript, and so in the failure that quotes it.
    public enum StandardError: Sendable {
        /// Its lines go to the transcript, marked `stderr:`.
        case captured
        /// Into the standard output pipe, interleaved as the child wrote them: its lines are
        /// standard output lines (`nextLine` sees them, `run` collects them in `stdout`).
        case standardOutput
    }
}
