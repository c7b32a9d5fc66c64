import Foundation
import PeerpoolWire

/// Worker messages: answers to opens, stream traffic toward clients, HELLO and heartbeats.
/// Messages from a worker generation that is no longer current are ignored.
extension SupervisorCore {
    func readBackend() {
        for _ in 0..<512 {
            let received: (frames: [ZMQFrame], truncated: Bool)?
            do { received = try backend.receive(maxParts: 3) } catch {
                logger.error("backend receive failed: \(error)")
                return
            }
            guard let (frames, _) = received else { return }
            guard frames.count >= 2, let index = shardsByRoutingID[frames[0].bytes] else { continue }
            let headerFrame = frames[1]
            guard let header = try? headerFrame.withUnsafeBytes({ bytes throws(WireError) in try WireHeader(decoding: bytes) }) else {
                logger.error("worker \(index) sent a malformed header; ignored")
                continue
            }
            handleWorkerMessage(shards[index], header, headerFrame, frames.count > 2 ? frames[2] : nil)
        }
    }

    private func handleWorkerMessage(_ shard: Shard, _ header: WireHeader, _ headerFrame: ZMQFrame, _ body: ZMQFrame?) {
        switch header.type {
        case .data, .finish, .credit, .aborted:
            guard var route = routes[header.id] else { return }  // the client reset or left
            if header.type == .credit, let credit = try? CreditBody(frame: body) {
                route.clientCredit += Int(credit.bytes)
                routes[header.id] = route
            }
            forwardToClient(route.client, header: headerFrame, body: body)
            // Forwarding to a client that is gone drops it with its routes: never write back
            // a route that went meanwhile (a FINISH to a departed client leaked it so).
            guard routes[header.id] != nil else { return }
            if header.type == .aborted {
                forgetStream(header.id)
            } else if header.type == .finish {
                route.workerFinished = true
                if route.clientFinished { forgetStream(header.id) } else { routes[header.id] = route }
            }
        case .opened:
            guard let open = opens.removeValue(forKey: header.id) else {
                // Cancelled or timed out meanwhile: the stream has nobody to go to.
                sendToWorker(shard, WireHeader(.reset, id: header.id), body: ResetBody.abandoned.encoded())
                return
            }
            shard.opens.remove(header.id)
            guard let client = clients[open.client], let opened = try? OpenedBody(frame: body) else {
                sendToWorker(shard, WireHeader(.reset, id: header.id), body: ResetBody.abandoned.encoded())
                return
            }
            client.requests[open.requestID] = nil
            client.streams.insert(header.id)
            shard.streams.insert(header.id)
            routes[header.id] = Route(client: open.client, remote: open.remote, shard: shard.index, clientCredit: Int(opened.sendWindow))
            forwardToClient(open.client, header: ZMQFrame(WireHeader(.opened, id: open.requestID).bytes), body: body)
        case .error:
            guard let open = opens.removeValue(forKey: header.id) else { return }
            shard.opens.remove(header.id)
            clients[open.client]?.requests[open.requestID] = nil
            forwardToClient(open.client, header: ZMQFrame(WireHeader(.error, id: open.requestID).bytes), body: body)
        case .hello:
            workerReady(shard)
        case .heartbeat:
            shard.lastHeartbeat = .now
            if let beat = try? HeartbeatBody(frame: body) {
                shard.heartbeat = beat
            }
        default:
            logger.warning("worker \(shard.index) sent \(header.type); ignored")
        }
    }
}
