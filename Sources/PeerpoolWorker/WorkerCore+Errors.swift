import PeerpoolErrors
import PeerpoolQUIC
import PeerpoolWire

/// How every layer's errors travel to the supervisor: their stable code names pass through
/// unchanged (docs/wire-protocol.md lists them), with the message.
extension WorkerCore {
    /// The ERROR or ABORTED body for `error`. `fallback` names errors without a code of their own.
    static func wireError(_ error: any Error, fallback: String) -> WireError {
        switch error {
        case let error as WireError:
            return error
        case let error as QUICError where error.code == .streamReset || error.code == .streamStopped:
            // The wire protocol has one code for "the peer reset or stopped the stream".
            return WireError(.streamReset, error.message)
        case let error as any CodedError:
            return WireError(WireError.Code(error.codeName), error.message)
        case is CancellationError:
            return WireError(.cancelled, "cancelled")
        default:
            return WireError(WireError.Code(fallback), "\(error)")
        }
    }
}
