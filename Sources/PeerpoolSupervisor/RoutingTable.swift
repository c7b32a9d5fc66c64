import PeerpoolIdentity

/// A record the supervisor routes: it belongs to one client (under the client's own id for it)
/// and one shard, and leads to one remote peer. None of these change after insertion.
protocol Routed {
    var client: SupervisorRoutingState.ClientKey { get }
    /// The client's id for it: the request id of an open, the stream id of a stream.
    var clientID: UInt64 { get }
    var shard: Int { get }
    var remote: ID52 { get }
}

/// Records by internal id, with the indexes the supervisor looks them up by (per client, per
/// shard, per client and peer), kept in step here and nowhere else: `insert` and `remove` are
/// the only ways in and out, and `update` cannot move a record to another client or shard.
struct RoutingTable<Record: Routed> {
    private(set) var records: [UInt64: Record] = [:]
    /// Client → its id → internal id.
    private var byClient: [SupervisorRoutingState.ClientKey: [UInt64: UInt64]] = [:]
    private var byShard: [Int: Set<UInt64>] = [:]
    /// Client → peer → how many records lead there (the per-client-per-peer limit).
    private var perPeer: [SupervisorRoutingState.ClientKey: [ID52: Int]] = [:]

    var count: Int { records.count }
    var isEmpty: Bool { records.isEmpty }

    subscript(id: UInt64) -> Record? { records[id] }

    /// The internal id of the client's record `clientID`.
    func id(client: SupervisorRoutingState.ClientKey, clientID: UInt64) -> UInt64? {
        byClient[client]?[clientID]
    }

    func ids(of client: SupervisorRoutingState.ClientKey) -> [UInt64] {
        byClient[client].map { Array($0.values) } ?? []
    }

    func count(of client: SupervisorRoutingState.ClientKey) -> Int {
        byClient[client]?.count ?? 0
    }

    func count(of client: SupervisorRoutingState.ClientKey, to remote: ID52) -> Int {
        perPeer[client]?[remote] ?? 0
    }

    /// Internal ids on `shard`, in allocation (arrival) order.
    func ids(on shard: Int) -> [UInt64] {
        byShard[shard].map { $0.sorted() } ?? []
    }

    func count(on shard: Int) -> Int {
        byShard[shard]?.count ?? 0
    }

    mutating func insert(_ record: Record, id: UInt64) {
        precondition(records[id] == nil, "internal id \(id) is in use")
        records[id] = record
        byClient[record.client, default: [:]][record.clientID] = id
        byShard[record.shard, default: []].insert(id)
        perPeer[record.client, default: [:]][record.remote, default: 0] += 1
    }

    @discardableResult
    mutating func remove(_ id: UInt64) -> Record? {
        guard let record = records.removeValue(forKey: id) else { return nil }
        byClient[record.client]?[record.clientID] = nil
        if byClient[record.client]?.isEmpty == true { byClient[record.client] = nil }
        byShard[record.shard]?.remove(id)
        if byShard[record.shard]?.isEmpty == true { byShard[record.shard] = nil }
        perPeer[record.client]?[record.remote]? -= 1
        if perPeer[record.client]?[record.remote] == 0 { perPeer[record.client]?[record.remote] = nil }
        if perPeer[record.client]?.isEmpty == true { perPeer[record.client] = nil }
        return record
    }

    /// Changes a record's own fields in place (not what it is indexed by: checked).
    @discardableResult
    mutating func update<R>(_ id: UInt64, _ body: (inout Record) -> R) -> R? {
        guard let before = records[id] else { return nil }
        let result = body(&records[id]!)
        let after = records[id]!
        precondition(
            after.client == before.client && after.clientID == before.clientID && after.shard == before.shard && after.remote == before.remote,
            "a routing record's keys changed in place"
        )
        return result
    }
}
