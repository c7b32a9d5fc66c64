/// Words on the wire, fastn-net's.
enum ProtocolWords {
    static let ack: [UInt8] = Array("ack\n".utf8)
    static let pong: [UInt8] = Array("pong\n".utf8)
    /// The accepting side's answer to a protocol it does not serve. Not fastn-net's (it acks and
    /// then drops the stream); any opener that expects `ack` reports this line as what arrived.
    static let refusedPrefix = "refused: "
}
