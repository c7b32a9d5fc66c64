import Foundation

/// Where the Python interoperability peers live: the repository and its `.venv-test/`.
public enum PythonInterop {
    /// The repository root, three levels above this file (`Tests/PeerpoolTestSupport/`).
    public static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// The interpreter `deploy/setup.sh --test` installs aioquic into.
    public static let interpreter = repositoryRoot.appendingPathComponent(".venv-test/bin/python")

    /// `script` (a path relative to the repository root) run unbuffered (`-u`) by the venv's
    /// interpreter, named `name`. Throws, saying how to create the venv, if it is missing.
    public static func command(_ name: String, script: String, arguments: [String] = []) throws -> TestChild.Command {
        guard FileManager.default.isExecutableFile(atPath: interpreter.path) else {
            throw TestChildError(
                .startFailed, child: name,
                "\(interpreter.path) is missing: run `deploy/setup.sh --test` in \(repositoryRoot.path)")
        }
        let path = repositoryRoot.appendingPathComponent(script).path
        return TestChild.Command(name, executable: interpreter, arguments: ["-u", path] + arguments)
    }
}
