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

/// A fixed table from ID52 to addresses and relays, loaded from a file or built in code.
///
/// File format: one peer per line, `ID52 host:port [host:port ...] [relay=URL ...]`; `#` starts
/// a comment; IPv6 as `[::1]:port`. A malformed line is an error naming the file and line. A
/// peer with only `relay=` values is dialled through its relay by a pool made with `relays:`.
public struct AddressBook: AddressResolver {
    public private(set) var entries: [ID52: [SocketAddress]]
    /// Relay URLs per peer, as iroh records name them (`relay=`).
    public private(set) var relays: [ID52: [String]]

    public init(_ entries: [ID52: [SocketAddress]] = [:], relays: [ID52: [String]] = [:]) {
        self.entries = entries
        self.relays = relays
    }

    /// The largest address book file read: a line per peer, so 64 MiB is millions of peers; the
    /// bound keeps a wrong path (`/dev/zero`) from filling memory.
    public static let maximumFileSize = 64 << 20

    public init(contentsOfFile path: String) throws {
        let text: String
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard attributes[.type] as? FileAttributeType == .typeRegular else {
                throw PoolError(.badAddress, "cannot read address book \(path): not a regular file")
            }
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            guard size <= Self.maximumFileSize else {
                throw PoolError(.badAddress, "cannot read address book \(path): \(size) bytes, more than \(Self.maximumFileSize)")
            }
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch let error as PoolError {
            throw error
        } catch {
            throw PoolError(.badAddress, "cannot read address book \(path): \(error.localizedDescription)")
        }
        var entries: [ID52: [SocketAddress]] = [:]
        var relays: [ID52: [String]] = [:]
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = fields.first else { continue }
            do {
                let id = try ID52(parsing: String(first))
                let (relayFields, addressFields) = fields.dropFirst().reduce(into: ([Substring](), [Substring]())) { split, field in
                    if field.hasPrefix("relay=") { split.0.append(field.dropFirst("relay=".count)) } else { split.1.append(field) }
                }
                for url in relayFields where !(url.hasPrefix("http://") || url.hasPrefix("https://")) {
                    throw PoolError(.badAddress, "relay=\(url) is not an http:// or https:// URL")
                }
                relays[id, default: []] += relayFields.map(String.init)
                entries[id, default: []] += try addressFields.map {
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
        self.relays = relays
    }

    public func addresses(of peer: ID52) async throws -> [SocketAddress] {
        entries[peer] ?? []
    }

    public func route(to peer: ID52) async throws -> PeerRoute {
        PeerRoute(addresses: entries[peer] ?? [], relayURLs: relays[peer] ?? [])
    }
}
