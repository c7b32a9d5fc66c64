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
import os
import sys

from aioquic.asyncio import QuicConnectionProtocol
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Interop"))
from quic_common import (  # noqa: E402
    add_common_arguments,
    close,
    connect,
    describe_close,
    report_client,
    run,
    say,
    serve_until_stopped,
)

# Largest echo the client accepts; the test sends one short line.
ECHO_LIMIT = 1 << 20


# --- server -------------------------------------------------------------------------------------


class EchoServerProtocol(QuicConnectionProtocol):
    """One server connection: checks the client's certificate, echoes its bidirectional streams."""

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            report_client(self._quic, "aioquic_peer")
        elif isinstance(event, StreamDataReceived):
            # Client-initiated bidirectional streams have IDs 0 mod 4; others are not ours to echo.
            if event.stream_id % 4 == 0:
                self._quic.send_stream_data(event.stream_id, event.data, end_stream=event.end_stream)
        elif isinstance(event, StreamReset):
            if event.stream_id % 4 == 0:
                self._quic.reset_stream(event.stream_id, event.error_code)
        # datagram_received transmits after every batch of events.


async def run_server(args) -> None:
    await serve_until_stopped(args, EchoServerProtocol)


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
    transport, protocol = await connect(args, EchoClientProtocol)
    try:
        quic = protocol._quic
        protocol.stream_id = quic.get_next_available_stream_id()
        quic.send_stream_data(protocol.stream_id, args.message.encode(), end_stream=True)
        protocol.transmit()
        echoed = await protocol.echo
        say(f"ECHO {json.dumps(echoed.decode('utf-8', 'backslashreplace'))}")
    finally:
        close(transport, protocol)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    modes = parser.add_subparsers(dest="mode", required=True)
    server = modes.add_parser("server")
    client = modes.add_parser("client")
    add_common_arguments(server, client)
    client.add_argument("--message", default="hello from aioquic\n")
    client.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds")
    args = parser.parse_args()

    run(
        "aioquic_peer", args, args.mode == "server", run_server, run_client,
        timeout_message=lambda args: f"no echo within {args.timeout} s",
    )


if __name__ == "__main__":
    main()
