import Foundation
import PeerpoolIdentity

/// Where a command's identities come from: `--key-file`s, else `PEERPOOL_SECRET_KEY`, else keys
/// generated for this run. One rule for `listen`, `ping`, `stream` and `serve`.
public enum CommandIdentities {
    /// The key in `PEERPOOL_SECRET_KEY` (64 hex characters), or nil when the variable is unset or
    /// empty. A value that is not a key is an error, never silently replaced by a new identity.
    public static func environmentKey(
        _ environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SecretKey? {
        guard let value = environment[SecretKey.defaultEnvironmentVariable], !value.isEmpty else { return nil }
        return try SecretKey.load(fromEnvironment: SecretKey.defaultEnvironmentVariable, environment: environment)
    }

    /// The keys of `paths` (`SecretKey.load(fromFiles:)`), or the environment's key when no file
    /// is given; empty when neither is.
    public static func configured(keyFiles paths: [String]) throws -> [SecretKey] {
        guard paths.isEmpty else { return try SecretKey.load(fromFiles: paths) }
        return try environmentKey().map { [$0] } ?? []
    }
}
