extension QUICConfiguration {
    /// Refuses values that would trap converting to ngtcp2's unsigned types, break a QUIC rule
    /// (payload at least 1200 bytes, 62-bit integers) or make no sense (a zero timeout), naming
    /// the setting and the range it takes. `QUICEndpoint.bind` calls it: a bad value fails
    /// there with `invalid_configuration`, never later inside a C call.
    public func validate() throws {
        func check(_ ok: Bool, _ name: String, _ value: Any, _ range: String) throws {
            guard ok else {
                throw QUICError(.invalidConfiguration, "QUICConfiguration.\(name) is \(value); it must be \(range)")
            }
        }
        let alpnBytes = alpn.utf8.count
        try check((1...255).contains(alpnBytes), "alpn", alpn.debugDescription, "1 to 255 bytes")
        let day = Duration.seconds(86_400)
        try check(idleTimeout >= .milliseconds(1) && idleTimeout <= day, "idleTimeout", idleTimeout, "between 1 ms and a day")
        try check(handshakeTimeout >= .milliseconds(1) && handshakeTimeout <= day, "handshakeTimeout", handshakeTimeout, "between 1 ms and a day")
        if let keepAliveInterval {
            try check(keepAliveInterval >= .milliseconds(1) && keepAliveInterval <= day, "keepAliveInterval", keepAliveInterval, "between 1 ms and a day, or nil")
        }
        try check((1...1_000_000).contains(maxConcurrentBidirectionalStreams), "maxConcurrentBidirectionalStreams", maxConcurrentBidirectionalStreams, "1 to 1,000,000")
        let window = 1...(1 << 40)
        try check(window.contains(initialStreamReceiveWindow), "initialStreamReceiveWindow", initialStreamReceiveWindow, "1 B to 1 TiB")
        try check(window.contains(maxStreamReceiveWindow) && maxStreamReceiveWindow >= initialStreamReceiveWindow,
                  "maxStreamReceiveWindow", maxStreamReceiveWindow, "1 B to 1 TiB and at least initialStreamReceiveWindow")
        try check(window.contains(initialConnectionReceiveWindow), "initialConnectionReceiveWindow", initialConnectionReceiveWindow, "1 B to 1 TiB")
        try check(window.contains(maxConnectionReceiveWindow) && maxConnectionReceiveWindow >= initialConnectionReceiveWindow,
                  "maxConnectionReceiveWindow", maxConnectionReceiveWindow, "1 B to 1 TiB and at least initialConnectionReceiveWindow")
        try check(window.contains(streamSendBufferLimit), "streamSendBufferLimit", streamSendBufferLimit, "1 B to 1 TiB")
        try check((1200...65_527).contains(maxUDPPayloadSize), "maxUDPPayloadSize", maxUDPPayloadSize, "1200 to 65527 (QUIC's minimum to UDP's maximum)")
        try check((1...1024).contains(maxPacketsPerBatch), "maxPacketsPerBatch", maxPacketsPerBatch, "1 to 1024")
        try check((1...1_000_000).contains(acceptBacklog), "acceptBacklog", acceptBacklog, "1 to 1,000,000")
        try check((1...10_000_000).contains(maxConnections), "maxConnections", maxConnections, "1 to 10,000,000")
        try check((1...1_000_000).contains(maxRelayPeers), "maxRelayPeers", maxRelayPeers, "1 to 1,000,000")
        try check((4096...(1 << 30)).contains(socketBufferSize), "socketBufferSize", socketBufferSize, "4 KiB to 1 GiB")
    }
}
