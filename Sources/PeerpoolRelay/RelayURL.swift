/// A relay's address as iroh writes it (`https://euw1-1.relay.iroh.network./`,
/// `http://127.0.0.1:3340`): scheme, host and port. Any path is ignored: the WebSocket is
/// always `/relay` and the probe `/ping`, as in iroh.
struct RelayURL: Sendable, Equatable, CustomStringConvertible {
    let usesTLS: Bool
    /// Without brackets for IPv6 literals (what a socket connect takes).
    let host: String
    let port: Int
    let description: String

    /// The `Host` header: brackets around IPv6, the port only when not the scheme's default.
    var hostHeader: String {
        let name = host.contains(":") ? "[\(host)]" : host
        return port == (usesTLS ? 443 : 80) ? name : "\(name):\(port)"
    }

    /// Host and port for a URL, always with the port.
    var hostHeaderWithPort: String { "\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// The name TLS checks the certificate against: the host without a trailing dot; nil for
    /// IP literals (SNI carries names only).
    var serverName: String? {
        let name = host.hasSuffix(".") ? String(host.dropLast()) : host
        let isIPLiteral = name.contains(":") || name.allSatisfy { $0.isNumber || $0 == "." }
        return isIPLiteral ? nil : name
    }

    init(parsing text: String) throws(RelayError) {
        func invalid(_ why: String) -> RelayError {
            RelayError(.invalidRelayURL, "relay URL \"\(text)\": \(why); expected http://host:port or https://host[:port]")
        }
        let usesTLS: Bool
        let rest: Substring
        if text.lowercased().hasPrefix("https://") {
            usesTLS = true
            rest = text.dropFirst(8)
        } else if text.lowercased().hasPrefix("http://") {
            usesTLS = false
            rest = text.dropFirst(7)
        } else {
            throw invalid("the scheme is not http or https")
        }
        let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        guard !authority.contains("@") else { throw invalid("user information is not supported") }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw invalid("an IPv6 address without its closing bracket") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("text after the IPv6 address") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { throw invalid("no host") }
        let port: Int
        if let portText {
            guard let value = Int(portText), (1...65535).contains(value) else { throw invalid("the port is not 1-65535") }
            port = value
        } else {
            port = usesTLS ? 443 : 80
        }
        self.usesTLS = usesTLS
        self.host = String(host)
        self.port = port
        let bracketed = host.contains(":") ? "[\(host)]" : String(host)
        self.description = "\(usesTLS ? "https" : "http")://\(bracketed):\(port)"
    }
}
