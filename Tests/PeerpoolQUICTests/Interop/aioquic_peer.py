#!/usr/bin/env python3
"""An aioquic peer for peerpool's interoperability tests (AioquicInteropTests.swift).

aioquic is an independent QUIC and TLS 1.3 implementation, so a handshake and an echoed stream
against it show that peerpool speaks the protocol, not merely agrees with itself. Both sides
present a self-signed ed25519 certificate; no CA is involved. This script reports the key the
other side proved, and the test compares it with the ID52 it expected.

    server  --port 0 --cert C --key K --alpn A
            Serves on UDP 127.0.0.1, requires a client certificate and echoes every
            bidirectional stream the client opens, finishing it when the client does.
            stdout: `READY <port>` once bound, then per connection `SNI <name or ->`
            and `PEER <hex of the client's raw ed25519 public key>`.
            Runs until SIGTERM, until stdin reaches EOF (the test died) or for --lifetime s.
    client  --host H --port P --sni ID52 --cert C --key K --alpn A [--message M]
            Connects presenting its certificate, sends M on one stream, finishes it and reads
            the echo until the server finishes. Accepts any server certificate (the test
            checks the key) but prints it.
            stdout: `SERVERKEY <hex>`, then `ECHO <JSON string of what came back>`; exit 0.
            Any failure, or more than --timeout s: a message on stderr, exit 1.

Run with the interpreter of `.venv-test/` (`deploy/setup.sh --test` creates it, aioquic 1.x).
Every stdout line is flushed at once: the test reads them through a pipe while we run.
"""

import argparse
import asyncio
import json
import socket
import ssl
import sys

from aioquic import tls
from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

# TLS alert certificate_required (RFC 8446), sent as QUIC CRYPTO_ERROR 0x100 + alert.
CERTIFICATE_REQUIRED = QuicErrorCode.CRYPTO_ERROR + 116
# Largest echo the client accepts; the test sends one short line.
ECHO_LIMIT = 1 << 20


def say(line: str) -> None:
    print(line, flush=True)


def fail(message: str) -> None:
    print(f"aioquic_peer: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


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
    """aioquic's servers send a CertificateRequest only when the TLS context's
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


class EchoServerProtocol(QuicConnectionProtocol):
    """One server connection: checks the client's certificate, echoes its bidirectional streams."""

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            try:
                key = raw_ed25519_key_hex(peer_certificate(self._quic))
            except ValueError as error:
                print(f"aioquic_peer: refusing client: {error}", file=sys.stderr, flush=True)
                self._quic.close(error_code=CERTIFICATE_REQUIRED, reason_phrase=str(error))
                return
            name = getattr(self._quic.tls, "peerpool_client_server_name", None)
            say(f"SNI {name or '-'}")
            say(f"PEER {key}")
        elif isinstance(event, StreamDataReceived):
            # Client-initiated bidirectional streams have IDs 0 mod 4; others are not ours to echo.
            if event.stream_id % 4 == 0:
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
        elif isinstance(event, StreamReset):
            if event.stream_id % 4 == 0:
                self._quic.reset_stream(event.stream_id, event.error_code)
        # datagram_received transmits after every batch of events.


async def watch_stdin() -> None:
    """Returns when stdin reaches EOF: the test that started us holds the other end."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def run_server(args) -> None:
    QuicConnection._initialize = _initialize_requesting_client_certificate
    configuration = QuicConfiguration(
        is_client=False,
        alpn_protocols=[args.alpn],
        # States the intent only: aioquic servers ignore verify_mode. The CertificateRequest comes
        # from _initialize_requesting_client_certificate; the client's chain is never checked
        # against a CA, only its CertificateVerify signature, and EchoServerProtocol closes
        # connections that presented no ed25519 certificate. The key is what counts.
        verify_mode=ssl.CERT_REQUIRED,
    )
    configuration.load_cert_chain(args.cert, args.key)
    server = await serve(args.host, args.port, configuration=configuration, create_protocol=EchoServerProtocol)
    port = server._transport.get_extra_info("sockname")[1]
    say(f"READY {port}")
    try:
        await asyncio.wait_for(watch_stdin(), timeout=args.lifetime)
    except asyncio.TimeoutError:
        pass
    finally:
        server.close()


# --- client -------------------------------------------------------------------------------------


class EchoClientProtocol(QuicConnectionProtocol):
    """Collects one stream's echo; the future settles when the server finishes or fails it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.negotiated_alpn = None
        self.termination = None
        self.stream_id = None
        self.received = bytearray()
        self.echo = asyncio.get_running_loop().create_future()

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            self.negotiated_alpn = event.alpn_protocol
        elif isinstance(event, StreamDataReceived) and event.stream_id == self.stream_id:
            self.received += event.data
            if len(self.received) > ECHO_LIMIT:
                self._settle(ValueError(f"echo exceeds {ECHO_LIMIT} bytes"))
            elif event.end_stream:
                self._settle(None)
        elif isinstance(event, StreamReset) and event.stream_id == self.stream_id:
            self._settle(ConnectionError(f"server reset the stream with code {event.error_code}"))
        elif isinstance(event, ConnectionTerminated):
            self.termination = event
            self._settle(ConnectionError(f"connection closed with {describe_close(event)}"))

    def _settle(self, error) -> None:
        # Before the stream opens, failures reach run_client through wait_connected instead.
        if self.stream_id is None or self.echo.done():
            return
        if error is None:
            self.echo.set_result(bytes(self.received))
        else:
            self.echo.set_exception(error)


async def run_client(args) -> None:
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
        lambda: EchoClientProtocol(QuicConnection(configuration=configuration)),
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

        quic = protocol._quic
        protocol.stream_id = quic.get_next_available_stream_id()
        quic.send_stream_data(protocol.stream_id, args.message.encode(), end_stream=True)
        protocol.transmit()
        echoed = await protocol.echo
        say(f"ECHO {json.dumps(echoed.decode('utf-8', 'backslashreplace'))}")
    finally:
        # close() sends CONNECTION_CLOSE at once; waiting out the draining period adds nothing.
        protocol.close()
        transport.close()


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    server = modes.add_parser("server")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=0)
    server.add_argument("--lifetime", type=float, default=120.0, help="exit after this many seconds")
    client = modes.add_parser("client")
    client.add_argument("--host", default="127.0.0.1")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--sni", required=True, help="the server's ID52")
    client.add_argument("--message", default="hello from aioquic\n")
    client.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds")
    for mode in (server, client):
        mode.add_argument("--cert", required=True, help="PEM certificate")
        mode.add_argument("--key", required=True, help="PEM PKCS#8 private key")
        mode.add_argument("--alpn", default="/fastn/entity/0.1")
    args = parser.parse_args()

    if args.mode == "server":
        try:
            asyncio.run(run_server(args))
        except KeyboardInterrupt:
            pass
        return
    try:
        asyncio.run(asyncio.wait_for(run_client(args), timeout=args.timeout))
    except asyncio.TimeoutError:
        fail(f"no echo within {args.timeout} s")
    except (ConnectionError, ValueError, OSError) as error:
        fail(str(error))


if __name__ == "__main__":
    main()
