import CNGTCP2
import PeerpoolIdentity

/// GnuTLS state shared by every connection of one endpoint: one certificate-credentials object
/// and the local identities it can present.
///
/// Which certificate a session presents is decided per session by `retrieveCertificate`
/// (client: the identity the connection dials from; server: the identity named in SNI, or the
/// only one). Peer keys are checked per session by the verify callback installed in
/// `QUICConnectionCore+TLS.swift`; names, dates and issuers play no part.
///
/// Ownership: `credentials` is allocated by `gnutls_certificate_allocate_credentials` and freed in
/// `deinit`. Sessions borrow it, so every connection keeps its endpoint's context alive.
/// Immutable after `init`.
final class TLSContext: @unchecked Sendable {
    let credentials: gnutls_certificate_credentials_t
    let identities: [ID52: TLSIdentity]
    /// The same, by ID52 text: SNI lookups skip parsing (which checks the curve point).
    private let identitiesByName: [String: TLSIdentity]
    /// ALPN as GnuTLS wants it; the bytes live as long as the context.
    let alpn: UnsafeMutableBufferPointer<UInt8>
    /// The priority string parsed once (`gnutls_priority_init`, freed by
    /// `gnutls_priority_deinit` in `deinit`) and shared by every session: parsing it per session
    /// costs about 8 KiB of memory per connection.
    let priorities: gnutls_priority_t

    static let priority = "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE"

    init(identities secretKeys: [SecretKey], alpn: String) throws {
        var byID: [ID52: TLSIdentity] = [:]
        for key in secretKeys {
            byID[key.id52] = try TLSIdentity(secretKey: key)
        }
        self.identities = byID
        self.identitiesByName = Dictionary(uniqueKeysWithValues: byID.map { ($0.key.description, $0.value) })

        var credentials: gnutls_certificate_credentials_t?
        let rv = gnutls_certificate_allocate_credentials(&credentials)
        guard rv == 0, let credentials else {
            throw QUICError(.internal, "gnutls_certificate_allocate_credentials: \(gnutlsMessage(rv))")
        }
        self.credentials = credentials
        gnutls_certificate_set_retrieve_function2(credentials, retrieveCertificate)

        var priorities: gnutls_priority_t?
        let prv = gnutls_priority_init(&priorities, Self.priority, nil)
        guard prv == 0, let priorities else {
            gnutls_certificate_free_credentials(credentials)
            throw QUICError(.internal, "gnutls_priority_init: \(gnutlsMessage(prv))")
        }
        self.priorities = priorities

        let bytes = Array(alpn.utf8)
        self.alpn = .allocate(capacity: max(1, bytes.count))
        _ = self.alpn.initialize(from: bytes)
    }

    deinit {
        gnutls_priority_deinit(priorities)
        gnutls_certificate_free_credentials(credentials)
        alpn.deallocate()
    }

    /// The identity a server session answers as: the one its SNI names, else the only one.
    func serverIdentity(sni: String?) -> TLSIdentity? {
        if let sni, let identity = identitiesByName[sni] { return identity }
        return identities.count == 1 ? identities.values.first : nil
    }
}

/// GnuTLS asks which certificate to present. Runs inside `ngtcp2_conn_read_pkt` (or the first
/// write), on the connection's event loop.
private func retrieveCertificate(
    _ session: gnutls_session_t?,
    _ requestedCAs: UnsafePointer<gnutls_datum_t>?,
    _ requestedCACount: CInt,
    _ algorithms: UnsafePointer<gnutls_pk_algorithm_t>?,
    _ algorithmCount: CInt,
    _ pcert: UnsafeMutablePointer<UnsafeMutablePointer<gnutls_pcert_st>?>?,
    _ pcertCount: UnsafeMutablePointer<CUnsignedInt>?,
    _ privateKey: UnsafeMutablePointer<gnutls_privkey_t?>?
) -> CInt {
    guard let session, let connection = QUICConnectionCore.from(session: session) else {
        pcertCount?.pointee = 0
        return -1
    }
    let lent = Unchecked(session)
    guard let identity = connection.assumeIsolated({ $0.presentedIdentity(session: lent.value) })
    else {
        pcertCount?.pointee = 0
        return -1
    }
    pcert?.pointee = identity.pcert
    pcertCount?.pointee = 1
    privateKey?.pointee = identity.privateKey
    return 0
}
