#!/usr/bin/env python3
"""An aioquic peer speaking fastn-net's stream protocol, for PeerpoolPool's interoperability tests.

aioquic is an independent QUIC and TLS 1.3 stack; the protocol on top is written here from
fastn-net's description, not from our Swift code, so a test against it shows that both agree on
the bytes. Both sides present a self-signed ed25519 certificate (no CA), as in
Tests/PeerpoolQUICTests/Interop/aioquic_peer.py; both take their QUIC setup from
Tests/Interop/quic_common.py.

The protocol: the opener opens a bidirectional stream and writes the protocol as one compact JSON
value and `\\n` ("Ping", or {"Generic": <any JSON>} for user protocols). The acceptor reads that
line (at most 64 KiB), answers `ack\\n`, and the two then speak the protocol. A ping is answered
`ack\\npong\\n` and the end of the stream.

    server  --port 0 --cert C --key K --alpn A [--reset-code N]
            Serves on UDP 127.0.0.1 and requires a client certificate.
            stdout: `READY <port>` once bound; per connection `SNI <name or ->` and
            `PEER <hex of the client's raw ed25519 key>`; per bidirectional stream the client
            opens, once its header line is complete:
              `STREAM <the header's JSON, compact with sorted keys>` and then
                "Ping"              -> `ack\\npong\\n`, end of stream, STOP_SENDING 0 *
                {"Generic":"echo"}  -> `ack\\n`, then echoes every later byte, ends when the client does
                anything else       -> `refused: <json>\\n`, end of stream, STOP_SENDING 0 *
                (* unless the client finished already; quinn does the same when fastn-net drops
                the receiving half unread)
              or, if the header is longer than 64 KiB, not UTF-8, not JSON or ends without `\\n`:
              `BADHEADER <reason>`, and the stream is reset and stop-sending is sent, both with
              --reset-code (default 1); the connection stays up.
            Runs until SIGTERM, until stdin reaches EOF (the test died) or for --lifetime s.

    client  --host H --port P --sni ID52 --cert C --key K --alpn A --mode M [--timeout S]
            [--count N] [--protocol JSON] [--garbage json|utf8|long]
            Connects presenting its certificate (accepts any server certificate, prints its key).
            stdout: first `SERVERKEY <hex>`, then by mode:
              ping     sends `"Ping"\\n` (without finishing), reads to the end:
                       `PONG ok` if that was exactly `ack\\npong\\n`, else `PONG bad <details>`;
                       then finishes its side (as quinn does when fastn-net drops the SendStream)
                       unless the server sent STOP_SENDING. --count N: N pings one after
                       another on the same connection, one PONG line each.
              echo     sends the header (--protocol, default {"Generic":"echo"}) and `\\n`, waits for
                       the first line; if it is `ack` sends `hello fastn\\n`, finishes, reads to the end:
                       `ECHO <JSON string of what came after ack\\n>`
                       (`ECHO reset <N> <JSON string>` if the server reset the stream instead,
                       `ECHO stop_sending <N> <JSON string>` if it sent STOP_SENDING before the payload);
                       otherwise, after the end of the stream: `NOACK <JSON string of all it sent>`
                       (`NOACK reset <N> <JSON string>` if it reset the stream).
              garbage  sends a bad header (--garbage json: `{not json\\n`; utf8: `"\\xff"\\n`;
                       long: 65537 bytes without a newline), not finishing, and waits for the
                       server's reaction (reset or end, at most 4 s, then up to 1 s more for
                       STOP_SENDING):
                       `GARBAGE reset=<N|none> stop_sending=<N|none> end=<yes|no> data=<JSON string>`
                       then pings on a new stream of the same connection:
                       `AFTER_GARBAGE PONG ok` or `AFTER_GARBAGE PONG bad <details>`.
            <details> is `data=<JSON string> end=<yes|no> reset=<N|none>`, plus
            ` overflow=1048576` if the server sent more than that (the rest is dropped) and
            ` closed=<JSON string>` if the connection was closed meanwhile.
            Exit 0 once the mode's lines are printed, whatever they say. Exit 1, with a message
            on stderr, if the handshake fails, the server closes the connection, or the whole run
            takes more than --timeout s (default 10).

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
    StopSendingReceived,
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

# fastn-net's limit on the header line, without its newline.
HEADER_LIMIT = 64 * 1024
# The most the client keeps of one stream; answers here are a few bytes.
READ_LIMIT = 1 << 20
ACK = b"ack\n"
PONG = b"ack\npong\n"
PING_HEADER = b'"Ping"\n'
ECHO_PAYLOAD = b"hello fastn\n"
GARBAGE = {
    "json": b"{not json\n",
    "utf8": b'"\xff"\n',
    "long": b'"' + b"a" * HEADER_LIMIT,  # 65537 bytes, no newline
}


def quoted(data: bytes) -> str:
    """Bytes as one JSON string on one line (invalid UTF-8 as \\xNN escapes)."""
    return json.dumps(data.decode("utf-8", "backslashreplace"))


def canonical(value) -> str:
    """serde_json's compact form: no spaces, keys sorted (by code point, so by UTF-8 bytes),
    non-ASCII unescaped. Floats may differ in spelling (Python 1e+100, serde 1e100)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_header(line: bytes):
    """The header's JSON value, or raises ValueError. Strict like serde_json: UTF-8 only, no
    NaN or Infinity; surrounding whitespace (a trailing \\r, say) is allowed."""
    text = line.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return json.loads(text, parse_constant=_reject_constant)


# --- server -------------------------------------------------------------------------------------


class AcceptedStream:
    """The acceptor's side of one stream: collecting the header, echoing, or done."""

    def __init__(self) -> None:
        self.header = bytearray()
        self.echoing = False
        self.done = False


class FastnServerProtocol(QuicConnectionProtocol):
    """One server connection: checks the client's certificate, answers its streams."""

    reset_code = 1

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Kept after a stream is done, so late data on it is not taken for a new header.
        self.streams: dict[int, AcceptedStream] = {}

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            report_client(self._quic, "fastn_peer")
        elif isinstance(event, StreamDataReceived):
            # Client-initiated bidirectional streams have IDs 0 mod 4; nothing else is served.
            if event.stream_id % 4 == 0:
                stream = self.streams.setdefault(event.stream_id, AcceptedStream())
                self.stream_data(event.stream_id, stream, event.data, event.end_stream)
        elif isinstance(event, StopSendingReceived):
            # aioquic has reset our side already; writing to it now would raise.
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.done = True
        elif isinstance(event, StreamReset):
            stream = self.streams.get(event.stream_id)
            if stream is not None and stream.echoing and not stream.done:
                stream.done = True
                self._quic.reset_stream(event.stream_id, event.error_code)
            elif stream is not None and not stream.done:
                stream.done = True  # reset before its header was complete: nothing to answer
        # datagram_received transmits after every batch of events.

    def stream_data(self, stream_id: int, stream: AcceptedStream, data: bytes, end: bool) -> None:
        if stream.done:
            return
        if stream.echoing:
            self._quic.send_stream_data(stream_id, data, end_stream=end)
            stream.done = end
            return
        stream.header += data
        newline = stream.header.find(b"\n")
        if newline < 0:
            if len(stream.header) > HEADER_LIMIT:
                self.refuse_header(stream_id, stream, f"header exceeds {HEADER_LIMIT} bytes without a newline")
            elif end:
                self.refuse_header(stream_id, stream, f"stream ended inside the header {quoted(bytes(stream.header))}")
            return
        line, rest = bytes(stream.header[:newline]), bytes(stream.header[newline + 1 :])
        stream.header = bytearray()
        if len(line) > HEADER_LIMIT:
            self.refuse_header(stream_id, stream, f"header line of {len(line)} bytes exceeds {HEADER_LIMIT}")
            return
        try:
            value = parse_header(line)
        except ValueError as error:
            self.refuse_header(stream_id, stream, f"{quoted(line)} is not UTF-8 JSON: {error}")
            return
        say(f"STREAM {canonical(value)}")
        if value == "Ping":
            self._quic.send_stream_data(stream_id, PONG, end_stream=True)
            self.stop_reading(stream_id, stream, end)
        elif value == {"Generic": "echo"}:
            stream.echoing = True
            self._quic.send_stream_data(stream_id, ACK)
            self.stream_data(stream_id, stream, rest, end)
        else:
            self._quic.send_stream_data(stream_id, f"refused: {canonical(value)}\n".encode(), end_stream=True)
            self.stop_reading(stream_id, stream, end)

    def stop_reading(self, stream_id: int, stream: AcceptedStream, client_finished: bool) -> None:
        """After the last answer: STOP_SENDING with code 0 unless the client already finished,
        as quinn does when fastn-net drops a RecvStream it has not read to the end. Without it
        a client that never finishes keeps the stream, and aioquic's stream credit, forever
        (it grants 128 bidirectional streams and returns credit only for fully closed ones)."""
        stream.done = True
        if not client_finished:
            try:
                self._quic.stop_stream(stream_id, 0)
            except ValueError:
                pass

    def refuse_header(self, stream_id: int, stream: AcceptedStream, reason: str) -> None:
        say(f"BADHEADER {reason}")
        stream.done = True
        self._quic.reset_stream(stream_id, self.reset_code)
        try:
            self._quic.stop_stream(stream_id, self.reset_code)
        except ValueError:
            pass  # aioquic already discarded the stream: the client finished and so did we


async def run_server(args) -> None:
    FastnServerProtocol.reset_code = args.reset_code
    await serve_until_stopped(args, FastnServerProtocol)


# --- client -------------------------------------------------------------------------------------


class OpenedStream:
    """What the server did on one stream the client opened."""

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id
        self.data = bytearray()
        self.ended = False
        self.reset = None  # the server's RESET_STREAM code
        self.stop_sending = None  # the server's STOP_SENDING code
        self.overflow = False  # it sent more than READ_LIMIT bytes; the rest was dropped
        self.changed = asyncio.Event()

    @property
    def finished(self) -> bool:
        return self.ended or self.reset is not None or self.overflow

    def details(self, protocol: "FastnClientProtocol") -> str:
        reset = "none" if self.reset is None else self.reset
        text = f"data={quoted(bytes(self.data))} end={'yes' if self.ended else 'no'} reset={reset}"
        if self.overflow:
            text += f" overflow={READ_LIMIT}"
        if protocol.termination is not None:
            text += f" closed={json.dumps(describe_close(protocol.termination))}"
        return text


class FastnClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.negotiated_alpn = None
        self.termination = None
        self.streams: dict[int, OpenedStream] = {}

    def quic_event_received(self, event) -> None:
        if isinstance(event, HandshakeCompleted):
            self.negotiated_alpn = event.alpn_protocol
        elif isinstance(event, ConnectionTerminated):
            self.termination = event
            for stream in self.streams.values():
                stream.changed.set()
        elif isinstance(event, (StreamDataReceived, StreamReset, StopSendingReceived)):
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
            if isinstance(event, StreamDataReceived):
                if len(stream.data) + len(event.data) > READ_LIMIT:
                    stream.overflow = True
                else:
                    stream.data += event.data
                stream.ended = stream.ended or event.end_stream
            elif isinstance(event, StreamReset):
                stream.reset = event.error_code
            else:
                stream.stop_sending = event.error_code
            stream.changed.set()

    def open_stream(self, data: bytes, end: bool = False) -> OpenedStream:
        stream = OpenedStream(self._quic.get_next_available_stream_id())
        self.streams[stream.stream_id] = stream
        self._quic.send_stream_data(stream.stream_id, data, end_stream=end)
        self.transmit()
        return stream

    def send(self, stream: OpenedStream, data: bytes, end: bool = False) -> None:
        self._quic.send_stream_data(stream.stream_id, data, end_stream=end)
        self.transmit()

    async def wait(self, stream: OpenedStream, condition) -> None:
        """Returns once `condition()` holds or the connection closed."""
        while not condition() and self.termination is None:
            stream.changed.clear()
            await stream.changed.wait()


async def ping(protocol: FastnClientProtocol) -> str:
    """`PONG ok` or `PONG bad <details>`."""
    stream = protocol.open_stream(PING_HEADER)
    await protocol.wait(stream, lambda: stream.finished)
    ok = stream.ended and stream.reset is None and bytes(stream.data) == PONG
    if stream.stop_sending is None and protocol.termination is None:
        protocol.send(stream, b"", end=True)
    return "PONG ok" if ok else f"PONG bad {stream.details(protocol)}"


async def echo(protocol: FastnClientProtocol, header: str) -> str:
    stream = protocol.open_stream(header.encode() + b"\n")
    await protocol.wait(stream, lambda: b"\n" in stream.data or stream.finished)
    if not bytes(stream.data).startswith(ACK):
        await protocol.wait(stream, lambda: stream.finished)
        if stream.reset is not None:
            return f"NOACK reset {stream.reset} {quoted(bytes(stream.data))}"
        return f"NOACK {quoted(bytes(stream.data))}"
    if stream.stop_sending is not None:
        return f"ECHO stop_sending {stream.stop_sending} {quoted(bytes(stream.data[len(ACK) :]))}"
    protocol.send(stream, ECHO_PAYLOAD, end=True)
    await protocol.wait(stream, lambda: stream.finished)
    echoed = bytes(stream.data[len(ACK) :])
    if stream.reset is not None:
        return f"ECHO reset {stream.reset} {quoted(echoed)}"
    if not stream.ended:
        return f"ECHO bad {stream.details(protocol)}"
    return f"ECHO {quoted(echoed)}"


async def garbage(protocol: FastnClientProtocol, kind: str) -> list[str]:
    stream = protocol.open_stream(GARBAGE[kind])
    try:
        await asyncio.wait_for(protocol.wait(stream, lambda: stream.finished), timeout=4)
        # RESET_STREAM and STOP_SENDING may come in separate packets.
        await asyncio.wait_for(protocol.wait(stream, lambda: stream.stop_sending is not None), timeout=1)
    except asyncio.TimeoutError:
        pass

    def code(value) -> str:
        return "none" if value is None else str(value)

    lines = [
        f"GARBAGE reset={code(stream.reset)} stop_sending={code(stream.stop_sending)} "
        f"end={'yes' if stream.ended else 'no'} data={quoted(bytes(stream.data))}"
    ]
    lines.append(f"AFTER_GARBAGE {await ping(protocol)}")
    return lines


async def run_client(args) -> None:
    transport, protocol = await connect(args, FastnClientProtocol)
    try:
        if args.mode == "ping":
            for _ in range(args.count):
                say(await ping(protocol))
        elif args.mode == "echo":
            say(await echo(protocol, args.protocol))
        else:
            for line in await garbage(protocol, args.garbage):
                say(line)
        if protocol.termination is not None:
            raise ConnectionError(f"the server closed the connection: {describe_close(protocol.termination)}")
    finally:
        close(transport, protocol)


# --- main ---------------------------------------------------------------------------------------


def main() -> None:
    sys.stdout.reconfigure(encoding="utf-8")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server")
    client = roles.add_parser("client")
    add_common_arguments(server, client)
    server.add_argument("--reset-code", type=int, default=1, help="application error code for bad headers")
    client.add_argument("--mode", choices=["ping", "echo", "garbage"], required=True)
    client.add_argument("--count", type=int, default=1, help="ping mode: pings on the connection")
    client.add_argument("--protocol", default='{"Generic":"echo"}', help="echo mode's header JSON")
    client.add_argument("--garbage", choices=sorted(GARBAGE), default="json", help="garbage mode's bad header")
    client.add_argument("--timeout", type=float, default=10.0, help="give up after this many seconds")
    args = parser.parse_args()

    run(
        "fastn_peer", args, args.role == "server", run_server, run_client,
        timeout_message=lambda args: f"mode {args.mode} did not finish within {args.timeout} s",
    )


if __name__ == "__main__":
    main()
