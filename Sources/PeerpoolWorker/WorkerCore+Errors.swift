import PeerpoolPool
import PeerpoolQUIC
import PeerpoolWire

/// How the pool's and the QUIC layer's errors travel to the supervisor: their stable code names
/// pass through unchanged (docs/wire-protocol.md lists them), with the message.
extension WorkerCore {
    /// The ERROR or ABORTED body for `error`. `fallback` names errors without a code of their own.
    static func wireError(_ error: any Error, fallback: String) -> WireError {
        switch error {
        case let error as WireError:
            return error
        case let error as PoolError:
            return WireError(WireError.Code(rawValue: error.code.name), error.message)
        case let error as StreamProtocolError:
            return WireError(WireError.Code(rawValue: error.code.name), error.message)
        case let error as QUICError:
            // The wire protocol has one code for "the peer reset or stopped the stream".
            if error.code == .streamReset || error.code == .streamStopped {
                return WireError(.streamReset, error.message)
            }
            return WireError(WireError.Code(rawValue: error.code.name), error.message)
        case is CancellationError:
            return WireError(.cancelled, "cancelled")
        default:
            return WireError(WireError.Code(rawValue: fallback), "\(error)")
        }
    }
}
