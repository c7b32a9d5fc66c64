import PeerpoolIdentity

extension SupervisorConfiguration {
    /// The identities the supervisor hands its workers: the key files' keys in order, or
    /// `ephemeralIdentities` fresh ones when no file is given. A key given twice is refused:
    /// two certificates for one name would make the choice of identity ambiguous.
    public func loadIdentities() throws -> [SecretKey] {
        guard !keyFiles.isEmpty else { return (0..<max(1, ephemeralIdentities)).map { _ in SecretKey.generate() } }
        // Each IdentityError names its file (or both files of a duplicate).
        do { return try SecretKey.load(fromFiles: keyFiles) } catch {
            throw SupervisorError(.identity, "cannot load key_files: \(error)")
        }
    }
}
