import Foundation
import PeerpoolWire

/// Client messages: read, decode the header, hand to the routing. Every malformed or unexpected
/// message gets an answer (ERROR for requests, ABORTED for stream ids) and touches nothing else;
/// none can block the loop.
extension SupervisorCore {
    /// Reads at most a batch per wake-up, so a flooding client cannot starve the workers' socket.
    func readFrontend() {
        for _ in 0..<512 {
            let received: (frames: [ZMQFrame], truncated: Bool)?
            do { received = try frontend.receive(maxParts: 3) } catch {
                logger.error("frontend receive failed: \(error)")
                return
            }
            guard let (frames, truncated) = received else { return }
            guard frames.count >= 2 else { continue }  // a ROUTER always prefixes the routing id
            let key = ClientKey(routingID: frames[0].bytes)
            handleClientMessage(key, header: frames[1], body: frames.count > 2 ? frames[2] : nil, extraFrames: truncated || frames.count > 3)
        }
    }

    private func handleClientMessage(_ key: ClientKey, header headerFrame: ZMQFrame, body: ZMQFrame?, extraFrames: Bool) {
        // A client dropped for not reading hears why before anything else: its next message
        // brings the notice. While even the notice cannot be queued, its messages are dropped
        // unanswered, as the ones that overran it were; it is not registered again until the
        // notice went out. (Serving it meanwhile lost the notice for good whenever libzmq freed
        // room between a failed notice and the reply after it: the client was live again and
        // never told.)
        if !overrunClients.isEmpty, let index = overrunClients.firstIndex(of: key) {
            let notice = WireError(.clientOverrun, "this client did not read its replies until \(Self.frontendHighWaterMark) were queued; the supervisor dropped it: every request it had waiting got no answer and every stream it had open was reset. Read replies as they come; this message is new and is served")
            guard trySendToClient(key, WireHeader(.error, id: 0), .bytes(notice.jsonBody)) == .sent else { return }
            overrunClients.remove(at: index)
        }
        let live = registerClient(key, header: headerFrame)
        // A message that outlived its connection is answered (the answer goes nowhere) and its
        // client forgotten at once, with whatever the message started.
        defer { if !live { dropClient(key) } }
        let header: WireHeader
        do throws(WireError) {
            header = try headerFrame.withUnsafeBytes { bytes throws(WireError) in try WireHeader(decoding: bytes) }
        } catch {
            let type = headerFrame.count >= 2 ? headerFrame.withUnsafeBytes { WireMessageType(rawValue: $0[1]) } : nil
            return perform(routing.receivedUndecodable(from: key, type: type, error: error))
        }
        perform(routing.receivedFromClient(header, body: body, extraFrames: extraFrames, from: key, now: .now))
    }
}
