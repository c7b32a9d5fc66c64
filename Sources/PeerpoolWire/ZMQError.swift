import CZMQ
import PeerpoolErrors

/// A failed libzmq call: what we were doing, errno and libzmq's text for it.
public struct ZMQError: PeerpoolError {
    public typealias Code = ErrorCode<ZMQError>

    public var operation: String
    public var errno: Int32
    public let location: SourceLocation

    public init(_ operation: String, errno: Int32 = zmq_errno(), file: String = #fileID, line: Int = #line) {
        self.operation = operation
        self.errno = errno
        self.location = SourceLocation(fileID: file, line: line)
    }

    /// Always `zmq_call_failed`: what differs is the operation and errno, both in the message.
    public var code: Code { .callFailed }

    public var message: String {
        "\(operation): \(String(cString: zmq_strerror(errno)))"
    }
}

extension ErrorCode where Domain == ZMQError {
    /// A libzmq call returned an error; the message names the call and libzmq's text for errno.
    public static let callFailed = Self("zmq_call_failed")
}
