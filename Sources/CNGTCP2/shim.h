// ngtcp2 0.12 + its GnuTLS crypto helper + GnuTLS, for Swift.
//
// Only what Swift cannot import lives here (see ../shared/TOOLCHAIN.md):
//  - ngtcp2's public entry points are function-like macros that pass a struct version to a
//    `*_versioned` function; Swift imports no function-like macro, so each gets a one-line forwarder.
//  - `gnutls_free` is a global function pointer, which Swift 6 refuses as shared mutable state.
// Delete a forwarder when Swift grows a way to call the macro (or ngtcp2 drops the versioning).
#ifndef PEERPOOL_CNGTCP2_SHIM_H
#define PEERPOOL_CNGTCP2_SHIM_H

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <stdarg.h>
#include <stdio.h>

static inline void pp_ngtcp2_settings_default(ngtcp2_settings *_Nonnull settings) {
    ngtcp2_settings_default(settings);
}

static inline void pp_ngtcp2_transport_params_default(ngtcp2_transport_params *_Nonnull params) {
    ngtcp2_transport_params_default(params);
}

static inline int pp_ngtcp2_conn_client_new(
    ngtcp2_conn *_Nullable *_Nonnull pconn, const ngtcp2_cid *_Nonnull dcid,
    const ngtcp2_cid *_Nonnull scid, const ngtcp2_path *_Nonnull path, uint32_t version,
    const ngtcp2_callbacks *_Nonnull callbacks, const ngtcp2_settings *_Nonnull settings,
    const ngtcp2_transport_params *_Nonnull params, void *_Nullable user_data) {
    return ngtcp2_conn_client_new(pconn, dcid, scid, path, version, callbacks, settings, params,
                                  NULL, user_data);
}

static inline int pp_ngtcp2_conn_server_new(
    ngtcp2_conn *_Nullable *_Nonnull pconn, const ngtcp2_cid *_Nonnull dcid,
    const ngtcp2_cid *_Nonnull scid, const ngtcp2_path *_Nonnull path, uint32_t version,
    const ngtcp2_callbacks *_Nonnull callbacks, const ngtcp2_settings *_Nonnull settings,
    const ngtcp2_transport_params *_Nonnull params, void *_Nullable user_data) {
    return ngtcp2_conn_server_new(pconn, dcid, scid, path, version, callbacks, settings, params,
                                  NULL, user_data);
}

static inline int pp_ngtcp2_conn_read_pkt(ngtcp2_conn *_Nonnull conn,
                                          const ngtcp2_path *_Nonnull path,
                                          const ngtcp2_pkt_info *_Nullable pi,
                                          const uint8_t *_Nonnull pkt, size_t pktlen,
                                          ngtcp2_tstamp ts) {
    return ngtcp2_conn_read_pkt(conn, path, pi, pkt, pktlen, ts);
}

static inline ngtcp2_ssize pp_ngtcp2_conn_writev_stream(
    ngtcp2_conn *_Nonnull conn, ngtcp2_path *_Nullable path, ngtcp2_pkt_info *_Nullable pi,
    uint8_t *_Nonnull dest, size_t destlen, ngtcp2_ssize *_Nullable pdatalen, uint32_t flags,
    int64_t stream_id, const ngtcp2_vec *_Nullable datav, size_t datavcnt, ngtcp2_tstamp ts) {
    return ngtcp2_conn_writev_stream(conn, path, pi, dest, destlen, pdatalen, flags, stream_id,
                                     datav, datavcnt, ts);
}

static inline ngtcp2_ssize pp_ngtcp2_conn_write_connection_close(
    ngtcp2_conn *_Nonnull conn, ngtcp2_path *_Nullable path, ngtcp2_pkt_info *_Nullable pi,
    uint8_t *_Nonnull dest, size_t destlen, const ngtcp2_connection_close_error *_Nonnull ccerr,
    ngtcp2_tstamp ts) {
    return ngtcp2_conn_write_connection_close(conn, path, pi, dest, destlen, ccerr, ts);
}

static inline void pp_ngtcp2_conn_get_conn_stat(ngtcp2_conn *_Nonnull conn,
                                                ngtcp2_conn_stat *_Nonnull cstat) {
    ngtcp2_conn_get_conn_stat(conn, cstat);
}

// ngtcp2's logging callback is variadic, which Swift cannot implement: this one writes each
// line to standard error. Installed only when PEERPOOL_NGTCP2_LOG is set (debugging aid).
static inline void pp_ngtcp2_log_stderr(void *_Nullable user_data, const char *_Nonnull format, ...) {
    (void)user_data;
    va_list ap;
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static inline void pp_ngtcp2_settings_log_to_stderr(ngtcp2_settings *_Nonnull settings) {
    settings->log_printf = pp_ngtcp2_log_stderr;
}

static inline void pp_gnutls_free(void *_Nullable ptr) { (gnutls_free)(ptr); }

#endif
