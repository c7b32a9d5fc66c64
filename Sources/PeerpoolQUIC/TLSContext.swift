import CNGTCP2
import PeerpoolIdentity

/// GnuTLS state shared by every connection of one endpoint: one certificate-credentials object
/// and the local identities it can present.
///
/// Which key a session presents is decided per session by `retrieveCertificate` (client: the
/// identity the connection dials from; server: the identity named in SNI, else the endpoint's
/// default one), and in which form by the negotiated certificate type: a raw public key
/// (RFC 7250, offered first; iroh and fastn accept nothing else) or, with
/// `QUICConfiguration.allowsX509Fallback`, a self-signed X.509 certificate for peers that
/// negotiate no certificate type. Peer keys are checked per session by the verify callback
/// installed in `QUICConnectionCore+TLS.swift`; names, dates and issuers play no part.
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

    /// The identity a server answers as when the client sends no SNI (iroh 1.0.4 and later
    /// never do): the endpoint's only identity, or the one named at bind time.
    let defaultIdentity: TLSIdentity?

    /// TLS 1.3 only; raw public keys (RFC 7250) both ways, offered first.
    static let rawPublicKeyPriority =
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:%DISABLE_TLS13_COMPAT_MODE:-CTYPE-ALL:+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK"
    /// The same, then X.509 both ways: a peer that sends no certificate-type extension gets X.509.
    static let fallbackPriority = rawPublicKeyPriority + ":+CTYPE-CLI-X509:+CTYPE-SRV-X509"

    /// SNI suffix iroh (up to 1.0.3, and 0.91 as fastn-net pins it) puts after the ID52.
    static let irohSNISuffix = ".iroh.invalid"

    /// The name a client puts in SNI for `peer`: what iroh clients send, which iroh servers
    /// ignore and peerpool servers understand.
    static func serverName(for peer: ID52) -> String {
        peer.description + irohSNISuffix
    }

    init(identities secretKeys: [SecretKey], alpn: String, x509Fallback: Bool, defaultIdentity: ID52? = nil) throws {
        var byID: [ID52: TLSIdentity] = [:]
        for key in secretKeys {
            byID[key.id52] = try TLSIdentity(secretKey: key, x509Fallback: x509Fallback)
        }
        self.identities = byID
        self.identitiesByName = Dictionary(uniqueKeysWithValues: byID.map { ($0.key.description, $0.value) })
        if let defaultIdentity {
            guard let identity = byID[defaultIdentity] else {
                throw QUICError(.noIdentity, "the identity to answer clients without SNI, \(defaultIdentity), is not among this endpoint's identities")
            }
            self.defaultIdentity = identity
        } else {
            self.defaultIdentity = byID.count == 1 ? byID.values.first : nil
        }

        var credentials: gnutls_certificate_credentials_t?
        let rv = gnutls_certificate_allocate_credentials(&credentials)
        guard rv == 0, let credentials else {
            throw QUICError(.internal, "gnutls_certificate_allocate_credentials: \(gnutlsMessage(rv))")
        }
        self.credentials = credentials
        gnutls_certificate_set_retrieve_function2(credentials, retrieveCertificate)

        var priorities: gnutls_priority_t?
        let prv = gnutls_priority_init(&priorities, x509Fallback ? Self.fallbackPriority : Self.rawPublicKeyPriority, nil)
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

    /// The identity a server session answers as: the one its SNI names (`<ID52>.iroh.invalid` or
    /// the bare ID52, in any case), else the default one (a client that asked for a key we do not
    /// hold then refuses the key it gets, naming both).
    func serverIdentity(sni: String?) -> TLSIdentity? {
        if var name = sni?.lowercased() {
            if name.hasSuffix(Self.irohSNISuffix) { name.removeLast(Self.irohSNISuffix.count) }
            if let identity = identitiesByName[name] { return identity }
            return identities.count == 1 ? defaultIdentity : nil
        }
        return defaultIdentity
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
    guard let identity = connection.assumeIsolated({ $0.presentedIdentity(session: lent.value) }) else {
        pcertCount?.pointee = 0
        return -1
    }
    // The certificate type is negotiated (ClientHello / EncryptedExtensions) before GnuTLS asks.
    let presented: UnsafeMutablePointer<gnutls_pcert_st>?
    switch gnutls_certificate_type_get2(session, GNUTLS_CTYPE_OURS) {
    case GNUTLS_CRT_RAWPK: presented = identity.rawPublicKey
    case GNUTLS_CRT_X509: presented = identity.certificate
    default: presented = nil
    }
    guard let presented else {
        pcertCount?.pointee = 0
        return -1
    }
    pcert?.pointee = presented
    pcertCount?.pointee = 1
    privateKey?.pointee = identity.privateKey
    return 0
}
