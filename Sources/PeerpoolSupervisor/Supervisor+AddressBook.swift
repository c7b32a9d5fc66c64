import PeerpoolPool

extension Supervisor {
    /// Reads the address book once before any worker starts. Each worker reads it again at its
    /// start; a file it cannot use would make every worker exit at once, over and over, into
    /// restart backoff, while `serve` had already printed SERVING. Here the fault is one error
    /// naming the file and line.
    static func checkAddressBook(_ path: String?) throws {
        guard let path else { return }
        do {
            _ = try AddressBook(contentsOfFile: path)
        } catch let error as PoolError {
            throw SupervisorConfigurationError(.invalidValue, key: "address_book", error.message)
        }
    }
}
