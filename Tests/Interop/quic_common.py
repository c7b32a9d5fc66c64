"""What peerpool's two aioquic test peers share: aioquic_peer.py (PeerpoolQUICTests) and
fastn_peer.py (PeerpoolPoolTests).

Both sides of a peerpool connection present a self-signed ed25519 certificate; no CA is involved.
This module sets aioquic up that way (servers request a client certificate and record the SNI,
clients bind a socket of the target's address family), reports the key the other side proved
and formats CONNECTION_CLOSE reasons. The scripts import it from `Tests/Interop/`.
"""

import asyncio
import socket
import ssl
import sys

from aioquic import tls
from aioquic.asyncio import serve
from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated
from aioquic.quic.packet import QuicErrorCode
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# TLS alert certificate_required (RFC 8446), sent as QUIC CRYPTO_ERROR 0x100 + alert.
CERTIFICATE_REQUIRED = QuicErrorCode.CRYPTO_ERROR + 116


def say(line: str) -> None:
    print(line, flush=True)


def raw_ed25519_key_hex(certificate) -> str:
    """The certificate's ed25519 key as 64 hex characters, or raises ValueError."""
    if certificate is None:
        raise ValueError("the peer presented no certificate")
    key = certificate.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"the peer's certificate holds a {type(key).__name__}, not an ed25519 key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def describe_close(event: ConnectionTerminated) -> str:
    """Words for a CONNECTION_CLOSE, naming the TLS alert behind a CRYPTO_ERROR."""
    code = event.error_code
    text = f"error {code:#x}"
    if QuicErrorCode.CRYPTO_ERROR <= code < QuicErrorCode.CRYPTO_ERROR + 0x100:
        text += f" (TLS alert {code - QuicErrorCode.CRYPTO_ERROR})"
    if event.reason_phrase:
        text += f": {event.reason_phrase}"
    return text


def peer_certificate(quic: QuicConnection):
    # aioquic 1.x has no public accessor for the peer's certificate; its TLS context keeps the
    # parsed leaf here (tls.py, Context._set_peer_certificate). Checked by the tests: if a new
    # aioquic renames it, PEER/SERVERKEY lines stop and the tests fail, not pass.
    return getattr(quic.tls, "_peer_certificate", None)


# --- server -------------------------------------------------------------------------------------

_original_initialize = QuicConnection._initialize


def _initialize_requesting_client_certificate(self: QuicConnection, peer_cid: bytes) -> None:
    """aioquic's servers send a CertificateRequest only when the TLS context's private
    `_request_client_certificate` is set ("for test purposes only"); no configuration field
    reaches it. peerpool peers always authenticate both ways, so every server connection sets it.
    The ClientHello's SNI is also recorded, since aioquic parses it but keeps it nowhere."""
    _original_initialize(self, peer_cid)
    if self._is_client:
        return
    context = self.tls
    context._request_client_certificate = True
    handle_hello = context._server_handle_hello

    def recording_handle_hello(input_buf: Buffer, initial_buf: Buffer, handshake_buf: Buffer) -> None:
        hello = tls.pull_client_hello(Buffer(data=input_buf.data_slice(0, input_buf.capacity)))
        context.peerpool_client_server_name = hello.server_name
        handle_hello(input_buf, initial_buf, handshake_buf)

    context._server_handle_hello = recording_handle_hello


def report_client(quic: QuicConnection, program: str) -> bool:
    """On a server's HandshakeCompleted: prints `SNI <name or ->` and `PEER <hex key>` and
    returns True, or closes the connection with certificate_required (saying why on stderr,
    prefixed by `program`) and returns False if the client proved no ed25519 key."""
    try:
        key = raw_ed25519_key_hex(peer_certificate(quic))
    except ValueError as error:
        print(f"{program}: refusing client: {error}", file=sys.stderr, flush=True)
        quic.close(error_code=CERTIFICATE_REQUIRED, reason_phrase=str(error))
        return False
    name = getattr(quic.tls, "peerpool_client_server_name", None)
    say(f"SNI {name or '-'}")
    say(f"PEER {key}")
    return True


async def watch_stdin() -> None:
    """Returns when stdin reaches EOF: the test that started us holds the other end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def serve_until_stopped(args, create_protocol) -> None:
    """Serves on args.host:args.port with args' certificate, key and ALPN, requiring a client
    certificate; prints `READY <port>` once bound and runs until stdin reaches EOF or for
    args.lifetime seconds."""
    QuicConnection._initialize = _initialize_requesting_client_certificate
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=[args.alpn],
        # States the intent only: aioquic servers ignore verify_mode. The CertificateRequest comes
        # from _initialize_requesting_client_certificate; the client's chain is never checked
        # against a CA, only its CertificateVerify signature, and report_client closes
        # connections that presented no ed25519 certificate. The key is what counts.
        verify_mode=ssl.CERT_REQUIRED,
    )
    configuration.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=configuration, create_protocol=create_protocol)
    port = server._transport.get_extra_info("sockname")[1]
    say(f"READY {port}")
    try:
        await asyncio.wait_for(watch_stdin(), timeout=args.lifetime)
    except asyncio.TimeoutError:
        pass
    finally:
        server.close()


# --- client -------------------------------------------------------------------------------------


async def connect(args, create_protocol):
    """Connects to args.host:args.port with SNI args.sni, presenting args' certificate, and checks
    the ALPN; prints `SERVERKEY <hex>`. Returns (transport, protocol); the caller closes both.
    The protocol must set `negotiated_alpn` on HandshakeCompleted and `termination` on
    ConnectionTerminated. Raises ConnectionError or ValueError."""
    configuration = QuicConfiguration(
        is_client=True,
        alpn_protocols=[args.alpn],
        server_name=args.sni,
        # No CA vouches for a peerpool server; its key is printed for the test to compare.
        verify_mode=ssl.CERT_NONE,
    )
    configuration.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()
    family, _, _, _, address = (await loop.getaddrinfo(args.host, args.port, type=socket.SOCK_DGRAM))[0]
    # aioquic.asyncio.connect binds a dual-stack IPv6 socket, which fails where IPv6 is off;
    # bind the address family of the target instead.
    wildcard = "0.0.0.0" if family == socket.AF_INET else "::"
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: create_protocol(QuicConnection(configuration=configuration)),
        family=family,
        local_addr=(wildcard, 0),
    )
    try:
        protocol.connect(address)
        try:
            await protocol.wait_connected()
        except ConnectionError:
            why = describe_close(protocol.termination) if protocol.termination else "no reason given"
            raise ConnectionError(f"handshake with {args.host}:{args.port} (SNI {args.sni}) failed: {why}") from None
        if protocol.negotiated_alpn != args.alpn:
            raise ConnectionError(f"server chose ALPN {protocol.negotiated_alpn!r}, not {args.alpn!r}")
        say(f"SERVERKEY {raw_ed25519_key_hex(peer_certificate(protocol._quic))}")
    except BaseException:
        close(transport, protocol)
        raise
    return transport, protocol


def close(transport, protocol) -> None:
    # close() sends CONNECTION_CLOSE at once; waiting out the draining period adds nothing.
    protocol.close()
    transport.close()


# --- command line -------------------------------------------------------------------------------


def add_common_arguments(server, client) -> None:
    """The options both scripts' server and client modes take."""
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    client.add_argument("--host", default="127.0.0.1")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--sni", required=True, help="the server's ID52")
    for mode in (server, client):
        mode.add_argument("--cert", required=True, help="PEM certificate")
        mode.add_argument("--key", required=True, help="PEM PKCS#8 private key")
        mode.add_argument("--alpn", default="/fastn/entity/0.1")


def run(program: str, args, is_server: bool, server, client, timeout_message) -> None:
    """Runs `server(args)` until stopped (Ctrl-C included) or `client(args)` for at most
    args.timeout seconds; a client failure or timeout (`timeout_message(args)`) exits 1 with
    `<program>: <why>` on stderr."""
    if is_server:
        try:
            asyncio.run(server(args))
        except KeyboardInterrupt:
            pass
        return
    try:
        asyncio.run(asyncio.wait_for(client(args), timeout=args.timeout))
    except asyncio.TimeoutError:
        fail(program, timeout_message(args))
    except (ConnectionError, ValueError, OSError) as error:
        fail(program, str(error))


def fail(program: str, message: str) -> None:
    print(f"{program}: {message}", file=sys.stderr, flush=True)
    sys.exit(1)
