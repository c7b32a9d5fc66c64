import Foundation

/// Where the Python interoperability peers live: the repository and its `.venv-test/`.
public enum PythonInterop {
    /// The repository root, three levels above this file (`Tests/PeerpoolTestSupport/`).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The interpreter `deploy/setup.sh --test` installs aioquic into.
    public static let interpreter = repositoryRoot.appendingPathComponent(".venv-test/bin/python")
}
