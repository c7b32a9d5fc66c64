import CNGTCP2
import Crypto
import PeerpoolIdentity

// TLS 1.3 through ngtcp2's GnuTLS helper. Both sides present their ed25519 key as a raw public
// key (RFC 7250: a 44-byte SubjectPublicKeyInfo, what iroh requires), or as a self-signed X.509
// certificate when X.509 fallback is on and the peer negotiates no certificate type; both require
// the peer's. Trust is the key alone: the client accepts exactly the key its target ID52 names;
// the server records whichever key the client proved.

extension QUICConnectionCore {
    func setUpTLS(server: Bool, serverName: String?) throws {
        var newSession: gnutls_session_t?
        // No session tickets: peerpool never resumes sessions, so issuing and storing tickets
        // would only cost CPU and memory per connection.
        // ENABLE_RAWPK: without it GnuTLS ignores the certificate types of the priority string.
        let flags = (server ? GNUTLS_SERVER.rawValue : GNUTLS_CLIENT.rawValue) | GNUTLS_NO_TICKETS.rawValue
            | GNUTLS_ENABLE_RAWPK.rawValue
        var rv = gnutls_init(&newSession, flags)
        guard rv == 0, let newSession else {
            throw QUICError(.internal, "gnutls_init: \(gnutlsMessage(rv))")
        }
        session = newSession

        rv = server
            ? ngtcp2_crypto_gnutls_configure_server_session(newSession)
            : ngtcp2_crypto_gnutls_configure_client_session(newSession)
        guard rv == 0 else { throw QUICError(.internal, "ngtcp2_crypto_gnutls_configure_session failed") }

        rv = gnutls_priority_set(newSession, tls.priorities)
        guard rv == 0 else { throw QUICError(.internal, "gnutls_priority_set: \(gnutlsMessage(rv))") }

        rv = gnutls_credentials_set(newSession, GNUTLS_CRD_CERTIFICATE, UnsafeMutableRawPointer(tls.credentials))
        guard rv == 0 else { throw QUICError(.internal, "gnutls_credentials_set: \(gnutlsMessage(rv))") }

        var alpn = gnutls_datum_t(data: tls.alpn.baseAddress, size: UInt32(tls.alpn.count))
        let alpnFlags = server
            ? (GNUTLS_ALPN_MANDATORY.rawValue | GNUTLS_ALPN_SERVER_PRECEDENCE.rawValue)
            : GNUTLS_ALPN_MANDATORY.rawValue
        rv = gnutls_alpn_set_protocols(newSession, &alpn, 1, alpnFlags)
        guard rv == 0 else { throw QUICError(.internal, "gnutls_alpn_set_protocols: \(gnutlsMessage(rv))") }

        if server {
            gnutls_certificate_server_set_request(newSession, GNUTLS_CERT_REQUIRE)
        } else if let serverName {
            rv = gnutls_server_name_set(newSession, GNUTLS_NAME_DNS, serverName, serverName.utf8.count)
            guard rv == 0 else { throw QUICError(.internal, "gnutls_server_name_set: \(gnutlsMessage(rv))") }
        }
        gnutls_session_set_verify_function(newSession, verifyPeerCertificate)

        connRef.pointee.get_conn = connectionForCrypto
        connRef.pointee.user_data = userData
        gnutls_session_set_ptr(newSession, UnsafeMutableRawPointer(connRef))
        ngtcp2_conn_set_tls_native_handle(conn, UnsafeMutableRawPointer(newSession))
    }

    /// Which identity this session presents (GnuTLS's retrieve callback).
    func presentedIdentity(session: gnutls_session_t) -> TLSIdentity? {
        if let localIdentity { return localIdentity }
        guard isServer else { return nil }
        var name = [UInt8](repeating: 0, count: 256)
        var length = name.count
        var type: CUnsignedInt = 0
        let sni: String? = name.withUnsafeMutableBytes { buffer in
            guard gnutls_server_name_get(session, buffer.baseAddress, &length, &type, 0) == 0 else { return nil }
            return String(decoding: buffer.prefix(length), as: UTF8.self)
        }
        guard let identity = tls.serverIdentity(sni: sni) else {
            pendingFailure = .handshakeFailed(sni.map { "client asked for \($0), which this endpoint does not serve" }
                ?? "client sent no SNI and this endpoint holds \(tls.identities.count) identities: "
                + "give it one socket per identity, or name the one that answers clients without SNI (iroh 1.0.4 and later send none)")
            return nil
        }
        localIdentity = identity
        return identity
    }

    /// GnuTLS's verify callback: the peer's certificate must carry an ed25519 key, and on the
    /// client it must be the key of the ID52 we dialled. Returns 0 to go on, -1 to refuse.
    func verifyPeer(session: gnutls_session_t) -> CInt {
        let offered = Self.peerKey(session: session)
        peerCertificateType = Self.certificateType(session: session, GNUTLS_CTYPE_PEERS)
        if let expectedPeer {
            guard offered == expectedPeer else {
                pendingFailure = .wrongPeerKey(expected: expectedPeer, offered: offered)
                return -1
            }
        } else if offered == nil {
            pendingFailure = .handshakeFailed("the client presented no ed25519 key")
            return -1
        } else if let relayRoute, offered != relayRoute.peer {
            // The relay names the sender; the handshake proves it. A relay that lies (or a
            // peer it lets pretend) is refused, since replies would go to the claimed peer.
            pendingFailure = .handshakeFailed(
                "the relay delivered this connection as coming from \(relayRoute.peer), but the client proved the key of "
                + "\(offered.map { "\($0)" } ?? "nobody"); refused")
            return -1
        }
        peerID52 = offered
        return 0
    }

    /// The negotiated certificate type of one side.
    static func certificateType(session: gnutls_session_t, _ target: gnutls_ctype_target_t) -> QUICCertificateType? {
        switch gnutls_certificate_type_get2(session, target) {
        case GNUTLS_CRT_RAWPK: return .rawPublicKey
        case GNUTLS_CRT_X509: return .x509
        default: return nil
        }
    }

    /// The ID52 of the peer's ed25519 key: its raw public key (exactly an ed25519
    /// SubjectPublicKeyInfo) or the key in its first X.509 certificate; nil if it has none.
    static func peerKey(session: gnutls_session_t) -> ID52? {
        var count: CUnsignedInt = 0
        guard let peers = gnutls_certificate_get_peers(session, &count), count > 0 else { return nil }
        // No curve-point check: TLS already verified the peer's CertificateVerify signature with
        // this key, which only a valid point allows.
        if gnutls_certificate_type_get2(session, GNUTLS_CTYPE_PEERS) == GNUTLS_CRT_RAWPK {
            guard let data = peers.pointee.data,
                let raw = TLSIdentity.ed25519Key(fromSubjectPublicKeyInfo: UnsafeBufferPointer(start: data, count: Int(peers.pointee.size))),
                let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
            else { return nil }
            return ID52(publicKey: key)
        }
        var certificate: gnutls_x509_crt_t?
        guard gnutls_x509_crt_init(&certificate) == 0, let certificate else { return nil }
        defer { gnutls_x509_crt_deinit(certificate) }
        guard gnutls_x509_crt_import(certificate, peers, GNUTLS_X509_FMT_DER) == 0 else { return nil }
        var curve = GNUTLS_ECC_CURVE_INVALID
        var x = gnutls_datum_t()
        guard gnutls_x509_crt_get_pk_ecc_raw(certificate, &curve, &x, nil) == 0 else { return nil }
        defer { pp_gnutls_free(x.data) }
        guard curve == GNUTLS_ECC_CURVE_ED25519, let data = x.data, x.size == 32 else { return nil }
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: UnsafeBufferPointer(start: data, count: 32)) else {
            return nil
        }
        return ID52(publicKey: key)
    }

    /// After the handshake: the negotiated ALPN must be ours (GnuTLS enforces it on the server;
    /// the client checks here, since a server may ignore ALPN).
    func negotiatedALPNMatches() -> Bool {
        guard let session else { return false }
        var selected = gnutls_datum_t()
        guard gnutls_alpn_get_selected_protocol(session, &selected) == 0, let data = selected.data else { return false }
        return UnsafeBufferPointer(start: data, count: Int(selected.size)).elementsEqual(tls.alpn)
    }

    /// Words for a TLS alert code, with the likely cause where one is known.
    func alertName(_ alert: UInt8) -> String {
        let description = gnutls_alert_description_t(UInt32(alert))
        var text = "TLS alert \(alert)"
        if let name = gnutls_alert_get_strname(description) { text += " \(String(cString: name))" }
        if let words = gnutls_alert_get_name(description) { text += " (\(String(cString: words)))" }
        if alert == 120 {
            text += ": no common ALPN protocol; we speak only \(String(decoding: tls.alpn, as: UTF8.self))"
        } else if alert == 40, let expectedPeer {
            text += ": the peer may not serve \(expectedPeer) (a multi-identity endpoint refuses an SNI it does not hold)"
        }
        return text
    }
}

private func verifyPeerCertificate(_ session: gnutls_session_t?) -> CInt {
    guard let session, let connection = QUICConnectionCore.from(session: session) else { return -1 }
    let lent = Unchecked(session)
    return connection.assumeIsolated { $0.verifyPeer(session: lent.value) }
}

private func connectionForCrypto(_ ref: UnsafeMutablePointer<ngtcp2_crypto_conn_ref>?) -> OpaquePointer? {
    guard let userData = ref?.pointee.user_data else { return nil }
    return QUICConnectionCore.from(userData: userData).assumeIsolated { Unchecked($0.conn) }.value
}
