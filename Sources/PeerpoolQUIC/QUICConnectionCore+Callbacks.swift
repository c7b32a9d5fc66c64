import CNGTCP2
import NIOCore

// ngtcp2 callbacks. Each runs synchronously inside an ngtcp2 call made by the connection actor,
// so it re-enters the actor with `assumeIsolated` (checked at run time). They only record what
// happened; anything that resumes application code or writes packets waits until ngtcp2 returns.

extension QUICConnectionCore {
    static func callbacks(client: Bool) -> ngtcp2_callbacks {
        var cb = ngtcp2_callbacks()
        if client {
            cb.client_initial = ngtcp2_crypto_client_initial_cb
            cb.recv_retry = ngtcp2_crypto_recv_retry_cb
            cb.extend_max_local_streams_bidi = onExtendMaxLocalStreamsBidi
        } else {
            cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb
            cb.extend_max_local_streams_bidi = onExtendMaxLocalStreamsBidi
        }
        cb.recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb
        cb.handshake_completed = onHandshakeCompleted
        cb.handshake_confirmed = onHandshakeConfirmed
        cb.encrypt = ngtcp2_crypto_encrypt_cb
        cb.decrypt = ngtcp2_crypto_decrypt_cb
        cb.hp_mask = ngtcp2_crypto_hp_mask_cb
        cb.recv_stream_data = onRecvStreamData
        cb.acked_stream_data_offset = onAckedStreamDataOffset
        cb.stream_open = onStreamOpen
        cb.stream_close = onStreamClose
        cb.stream_reset = onStreamReset
        cb.extend_max_stream_data = onExtendMaxStreamData
        cb.rand = onRand
        cb.get_new_connection_id = onGetNewConnectionID
        cb.remove_connection_id = onRemoveConnectionID
        cb.update_key = ngtcp2_crypto_update_key_cb
        cb.delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb
        cb.delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb
        cb.get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb
        cb.version_negotiation = ngtcp2_crypto_version_negotiation_cb
        return cb
    }
}

private func onHandshakeCompleted(_ conn: OpaquePointer?, _ userData: UnsafeMutableRawPointer?) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.handshakeCompletedInCallback = true }
    return 0
}

private func onHandshakeConfirmed(_ conn: OpaquePointer?, _ userData: UnsafeMutableRawPointer?) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.handshakeConfirmed = true }
    return 0
}

private func onRecvStreamData(
    _ conn: OpaquePointer?, _ flags: UInt32, _ streamID: Int64, _ offset: UInt64,
    _ data: UnsafePointer<UInt8>?, _ length: Int, _ userData: UnsafeMutableRawPointer?,
    _ streamUserData: UnsafeMutableRawPointer?
) -> CInt {
    let bytes = Unchecked(UnsafeRawBufferPointer(start: data, count: length))
    QUICConnectionCore.from(userData: userData).assumeIsolated {
        $0.receivedStreamData(streamID, bytes.value, fin: flags & UInt32(NGTCP2_STREAM_DATA_FLAG_FIN) != 0)
    }
    return 0
}

private func onAckedStreamDataOffset(
    _ conn: OpaquePointer?, _ streamID: Int64, _ offset: UInt64, _ length: UInt64,
    _ userData: UnsafeMutableRawPointer?, _ streamUserData: UnsafeMutableRawPointer?
) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.acknowledged(streamID, Int(length)) }
    return 0
}

private func onStreamOpen(_ conn: OpaquePointer?, _ streamID: Int64, _ userData: UnsafeMutableRawPointer?) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.peerOpenedStream(streamID) }
    return 0
}

private func onStreamClose(
    _ conn: OpaquePointer?, _ flags: UInt32, _ streamID: Int64, _ code: UInt64,
    _ userData: UnsafeMutableRawPointer?, _ streamUserData: UnsafeMutableRawPointer?
) -> CInt {
    let hasCode = flags & UInt32(NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET) != 0
    QUICConnectionCore.from(userData: userData).assumeIsolated {
        $0.transportClosedStream(streamID, applicationCode: hasCode ? code : nil)
    }
    return 0
}

private func onStreamReset(
    _ conn: OpaquePointer?, _ streamID: Int64, _ finalSize: UInt64, _ code: UInt64,
    _ userData: UnsafeMutableRawPointer?, _ streamUserData: UnsafeMutableRawPointer?
) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.peerResetStream(streamID, code: code) }
    return 0
}

private func onExtendMaxLocalStreamsBidi(
    _ conn: OpaquePointer?, _ maxStreams: UInt64, _ userData: UnsafeMutableRawPointer?
) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.streamCreditArrived() }
    return 0
}

private func onExtendMaxStreamData(
    _ conn: OpaquePointer?, _ streamID: Int64, _ maxData: UInt64,
    _ userData: UnsafeMutableRawPointer?, _ streamUserData: UnsafeMutableRawPointer?
) -> CInt {
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.queueForSend(streamID) }
    return 0
}

private func onRand(_ dest: UnsafeMutablePointer<UInt8>?, _ length: Int, _ context: UnsafePointer<ngtcp2_rand_ctx>?) {
    _ = gnutls_rnd(GNUTLS_RND_RANDOM, dest, length)
}

private func onGetNewConnectionID(
    _ conn: OpaquePointer?, _ cid: UnsafeMutablePointer<ngtcp2_cid>?, _ token: UnsafeMutablePointer<UInt8>?,
    _ length: Int, _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let cid, let token else { return NGTCP2_ERR_CALLBACK_FAILURE }
    cid.pointee.datalen = length
    let ok = withUnsafeMutableBytes(of: &cid.pointee.data) {
        gnutls_rnd(GNUTLS_RND_RANDOM, $0.baseAddress, length) == 0
    }
    guard ok, gnutls_rnd(GNUTLS_RND_RANDOM, token, Int(NGTCP2_STATELESS_RESET_TOKENLEN)) == 0 else {
        return NGTCP2_ERR_CALLBACK_FAILURE
    }
    let id = ConnectionID(cid.pointee)
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.addConnectionID(id) }
    return 0
}

private func onRemoveConnectionID(
    _ conn: OpaquePointer?, _ cid: UnsafePointer<ngtcp2_cid>?, _ userData: UnsafeMutableRawPointer?
) -> CInt {
    guard let cid else { return 0 }
    let id = ConnectionID(cid.pointee)
    QUICConnectionCore.from(userData: userData).assumeIsolated { $0.removeConnectionID(id) }
    return 0
}

/// Carries a value that is not `Sendable` (a pointer ngtcp2 lent us) into `assumeIsolated`.
/// Sound only because the closure runs synchronously, on this thread, before the call returns.
struct Unchecked<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
