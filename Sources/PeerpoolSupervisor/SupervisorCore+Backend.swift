import Foundation
import PeerpoolWire

/// Worker messages, handed to the routing. Messages from a worker generation that is no longer
/// current are ignored (its routing id is forgotten when it exits).
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
            guard let header = try? frames[1].withUnsafeBytes({ bytes throws(WireError) in try WireHeader(decoding: bytes) }) else {
                logger.error("worker \(index) sent a malformed header; ignored")
                continue
            }
            perform(routing.receivedFromWorker(shard: index, header, body: frames.count > 2 ? frames[2] : nil, now: .now))
        }
    }
}
