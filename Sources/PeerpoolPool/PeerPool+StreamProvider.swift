import PeerpoolProtocol

// The in-process pool and its streams are the first implementations of the value module's
// protocols; a supervisor's client is the other.
extension PeerStream: PeerByteStream {}
extension PeerPool: StreamProvider {}
