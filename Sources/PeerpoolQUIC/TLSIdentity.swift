import CNGTCP2
import PeerpoolIdentity

/// One local identity in GnuTLS form: its self-signed certificate and its private key.
///
/// Ownership: `pcert` is allocated here and filled by `gnutls_pcert_import_x509_raw`;
/// `privateKey` comes from `gnutls_privkey_init`. Both are freed in `deinit` and nowhere else.
/// GnuTLS only borrows them (the certificate retrieve callback hands out pointers it must not
/// free), so an identity must outlive every session of its endpoint: `TLSContext` keeps it.
/// Immutable after `init`, so it is safe to read from any thread.
final class TLSIdentity: @unchecked Sendable {
    let id52: ID52
    let pcert: UnsafeMutablePointer<gnutls_pcert_st>
    let privateKey: gnutls_privkey_t

    init(secretKey: SecretKey) throws {
        let certificate = try IdentityCertificate(secretKey: secretKey)
        self.id52 = secretKey.id52

        let pcert = UnsafeMutablePointer<gnutls_pcert_st>.allocate(capacity: 1)
        pcert.initialize(to: gnutls_pcert_st())
        var der = certificate.certificateDER
        let rv = der.withUnsafeMutableBufferPointer { bytes in
            var datum = gnutls_datum_t(data: bytes.baseAddress, size: UInt32(bytes.count))
            return gnutls_pcert_import_x509_raw(pcert, &datum, GNUTLS_X509_FMT_DER, 0)
        }
        guard rv == 0 else {
            pcert.deallocate()
            throw QUICError(.internal, "GnuTLS refused the certificate of \(secretKey.id52): \(gnutlsMessage(rv))")
        }

        // GnuTLS 3.7 does not check that an ed25519 key matches its certificate; we do, on the
        // raw bytes (re-validating our own key as a curve point would cost ~0.2 ms per identity).
        var curve = GNUTLS_ECC_CURVE_INVALID
        var x = gnutls_datum_t()
        let certified: [UInt8]? = gnutls_pubkey_export_ecc_raw(pcert.pointee.pubkey, &curve, &x, nil) == 0 && x.data != nil
            ? Array(UnsafeBufferPointer(start: x.data, count: Int(x.size))) : nil
        pp_gnutls_free(x.data)
        guard curve == GNUTLS_ECC_CURVE_ED25519, certified == secretKey.id52.publicKeyBytes else {
            gnutls_pcert_deinit(pcert)
            pcert.deallocate()
            throw QUICError(.noIdentity, "the certificate built for \(secretKey.id52) does not carry its key")
        }

        var key: gnutls_privkey_t?
        guard gnutls_privkey_init(&key) == 0, let key else {
            gnutls_pcert_deinit(pcert)
            pcert.deallocate()
            throw QUICError(.internal, "gnutls_privkey_init failed")
        }
        var keyDER = certificate.privateKeyDER
        let krv = keyDER.withUnsafeMutableBufferPointer { bytes in
            var datum = gnutls_datum_t(data: bytes.baseAddress, size: UInt32(bytes.count))
            return gnutls_privkey_import_x509_raw(key, &datum, GNUTLS_X509_FMT_DER, nil, 0)
        }
        guard krv == 0 else {
            gnutls_privkey_deinit(key)
            gnutls_pcert_deinit(pcert)
            pcert.deallocate()
            throw QUICError(.internal, "GnuTLS refused the private key of \(secretKey.id52): \(gnutlsMessage(krv))")
        }
        self.pcert = pcert
        self.privateKey = key
    }

    deinit {
        gnutls_privkey_deinit(privateKey)
        gnutls_pcert_deinit(pcert)
        pcert.deallocate()
    }
}

/// GnuTLS's text for an error code.
func gnutlsMessage(_ code: CInt) -> String {
    guard let text = gnutls_strerror(code) else { return "GnuTLS error \(code)" }
    return String(cString: text)
}
