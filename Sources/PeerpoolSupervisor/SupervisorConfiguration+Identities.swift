import PeerpoolIdentity

extension SupervisorConfiguration {
    /// The identities the supervisor hands its workers: the key files' keys in order, or
    /// `ephemeralIdentities` fresh ones when no file is given. A key given twice is refused:
    /// two certificates for one name would make the choice of identity ambiguous.
    public func loadIdentities() throws -> [SecretKey] {
        guard !keyFiles.isEmpty else { return (0..<max(1, ephemeralIdentities)).map { _ in SecretKey.generate() } }
        var keys: [SecretKey] = []
        var seen = Set<ID52>()
        for path in keyFiles {
            let key: SecretKey
            do { key = try SecretKey.load(fromFile: path) } catch {
                throw SupervisorError(.identity, "cannot load key file \(path): \(error)")
            }
            guard seen.insert(key.id52).inserted else {
                throw SupervisorError(.identity, "key file \(path) holds \(key.id52), which an earlier key file already gave")
            }
            keys.append(key)
        }
        return keys
    }
}
