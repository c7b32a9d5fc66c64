import Foundation
import NIOCore
import PeerpoolIdentity

/// Finds where a peer can be reached. The pool asks only when a request gives no address.
public protocol AddressResolver: Sendable {
    /// Addresses to try, best first. Empty when unknown.
    func addresses(of peer: ID52) async throws -> [SocketAddress]

    /// Addresses and relay servers: what discovery (DNS, pkarr) knows beyond addresses. A
    /// resolver that knows only addresses need not implement it.
    func route(to peer: ID52) async throws -> PeerRoute
}

extension AddressResolver {
    public func route(to peer: ID52) async throws -> PeerRoute {
        PeerRoute(addresses: try await addresses(of: peer))
    }
}

/// A fixed table from ID52 to addresses, loaded from a file or built in code.
///
/// File format: one peer per line, `ID52 host:port [host:port ...]`; `#` starts a comment;
/// IPv6 as `[::1]:port`. A malformed line is an error naming the file and line.
public struct AddressBook: AddressResolver {
    public private(set) var entries: [ID52: [SocketAddress]]

    public init(_ entries: [ID52: [SocketAddress]] = [:]) {
        self.entries = entries
    }

    public init(contentsOfFile path: String) throws {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PoolError(.badAddress, "cannot read address book \(path): \(error.localizedDescription)")
        }
        var entries: [ID52: [SocketAddress]] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = fields.first else { continue }
            do {
                let id = try ID52(parsing: String(first))
                entries[id, default: []] += try fields.dropFirst().map {
                    guard let address = try PeerAddress(parsing: "\(id)@\($0)").socketAddress else {
                        throw PoolError(.badAddress, "missing address")
                    }
                    return address
                }
            } catch {
                throw PoolError(.badAddress, "\(path):\(number + 1): \(error)")
            }
        }
        self.entries = entries
    }

    public func addresses(of peer: ID52) async throws -> [SocketAddress] {
        entries[peer] ?? []
    }
}
