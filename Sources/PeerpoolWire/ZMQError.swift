import CZMQ

/// A failed libzmq call: what we were doing, errno and libzmq's text for it.
public struct ZMQError: Error, Sendable, CustomStringConvertible {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32 = zmq_errno()) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "\(operation): \(String(cString: zmq_strerror(errno)))"
    }
}
