import NIOCore
import NIOWebSocket

/// The last handler of a relay WebSocket: hands each binary message to the core, answers
/// WebSocket-level pings, and turns anything else into a reason for the core to log before the
/// channel closes. Runs on the core's event loop, like the core.
final class RelayChannelHandler: ChannelInboundHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let core: NIOLoopBound<RelayConnectionCore>
    private let generation: Int

    init(core: NIOLoopBound<RelayConnectionCore>, generation: Int) {
        self.core = core
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = Self.unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            core.value.received(generation: generation, frame.unmaskedData)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(Self.wrapOutboundOut(pong), promise: nil)
        case .pong:
            break
        case .connectionClose:
            core.value.channelFailed(generation: generation, RelayError(.relayConnectionLost, "the relay closed the WebSocket"))
            context.close(promise: nil)
        default:
            core.value.channelFailed(generation: generation, RelayError(
                .relayFrameMalformed, "the relay sent a WebSocket \(frame.opcode) message; relay frames are binary"))
            context.close(promise: nil)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        core.value.writabilityChanged(generation: generation)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let failure = error is IOError
            ? RelayError(.relayConnectionLost, "the connection to the relay failed: \(error)", underlying: error)
            : RelayError(.relayFrameMalformed, "the relay's WebSocket stream is broken: \(error)", underlying: error)
        core.value.channelFailed(generation: generation, failure)
        context.close(promise: nil)
    }
}
