#!/usr/bin/env python3
"""A real iroh endpoint (n0's Python bindings, `iroh==1.2.0`, bundling iroh 1.4.1) speaking
fastn-net's stream protocol, for the iroh interoperability tests (IrohInteropTests).

iroh authenticates with TLS 1.3 raw public keys (RFC 7250) and knows nothing of peerpool; the
stream protocol here is written from fastn-net's description, not from our Swift code.

SAFETY: an iroh endpoint's port mapper probes the LAN gateway and cannot be switched off, so this
script refuses to start unless its network namespace has no interface but loopback (the tests
run it under `unshare --net`). By default relays and address lookup are off (minimal preset, relay
mode disabled) and the only addresses it ever dials are the ones given on the command line.
`--relay URL` makes URL its home relay (`RelayMode.custom_from_urls`; the tests' relay is
Tests/PeerpoolTestSupport/Scripts/iroh_relay.py on 127.0.0.1). `--dns-discovery` switches to n0's
preset, whose address lookup resolves `TXT _iroh.<z-base-32 key>.dns.iroh.link` through the
system resolver (the tests bind-mount a resolv.conf naming 127.0.0.1 over /etc/resolv.conf inside
the namespace and answer there); its pkarr publisher also tries to reach dns.iroh.link, which
in the namespace fails quietly. The bindings cannot change the origin or the publisher's relay.

The protocol: the opener opens a bidirectional stream and writes the protocol as one compact
JSON value and `\\n` ("Ping", {"Generic": "echo"}); the acceptor reads that line, answers
`ack\\n`, and the two speak the protocol. A ping is answered `ack\\npong\\n` and the end of the
stream; echo sends back every byte until the opener finishes, then finishes.

  Both roles take [--relay URL] [--dns-discovery]. With --relay, `RELAY <url>` follows the
  first line once the endpoint is online with that home relay (or `RELAY_ERROR <message>` and
  exit 1 if it is not within --timeout).

    server  [--secret HEX] [--host 127.0.0.1]
            stdout: `READY <udp port> <our ID52>` once bound, then `SOCKETS <addr> ...` (every
            UDP socket iroh bound, the extra [::] one included); `PEER <client ID52>` per connection;
            `STREAM <header>` per stream. Serves "Ping" and {"Generic":"echo"}; anything else
            gets `refused: <header>\\n` and the end of the stream. Runs until stdin reaches EOF
            (the test is gone) or SIGKILL.

    client  --peer ID52 [--addr HOST:PORT] [--relay-url URL] [--secret HEX] --mode M [--count N]
            [--bytes N] [--streams N] [--timeout S]
            Dials `--peer` at --addr and/or through the relay --relay-url (the EndpointAddr holds
            what is given); with neither, by ID alone, which needs --dns-discovery.
            stdout: `ID <our ID52>`, then `CONNECTED <remote ID52>` and `TIMING connect <ms> ms`
            (the handshake), then by mode:
              ping        N pings (--count, default 1), each on a new stream: `PONG ok` or
                          `PONG bad <JSON string of what came>`, then `TIMING ping <ms> ms`
              echo        one echo stream of --bytes (default 1 MiB) of a fixed pattern, written
                          while reading: `ECHO ok <bytes> <seconds>` if byte-exact, else
                          `ECHO bad <details>`
              concurrent  --streams N echo streams at once on the one connection, 4 KiB each:
                          `CONCURRENT ok <N>` or `CONCURRENT bad <details>`
              hold        one echo stream written and read without end; `HOLDING 262144` once 256 KiB
                          are written. Runs until killed (or --timeout).
            Exit 0 once its lines are printed. Exit 1, with the reason on stderr (`CONNECT_ERROR
            <message>` on stdout when the connection fails), on any failure or after --timeout
            (default 30 s).
"""

import argparse
import asyncio
import base64
import json
import socket
import sys
import time

ALPN = b"/fastn/entity/0.1"
ACK = b"ack\n"
PONG = b"ack\npong\n"
HEADER_LIMIT = 64 * 1024
CHUNK = 64 * 1024


def say(line: str) -> None:
    print(line, flush=True)


def require_loopback_only_namespace() -> None:
    """Refuse to run iroh anywhere but in a namespace that has only loopback."""
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        sys.stderr.write(
            f"iroh_peer: refusing to start: this network namespace has interfaces {names}; "
            "run me inside `unshare --net` (iroh's port mapper probes the LAN gateway)\n")
        sys.exit(2)


def describe(error: Exception) -> str:
    """An iroh error's message (str() of one is empty), else the exception's text."""
    message = getattr(error, "message", None)
    return message() if callable(message) else repr(error)


def id52(key: bytes) -> str:
    """fastn's ID52: lowercase RFC 4648 base32hex of the 32-byte key, no padding."""
    return base64.b32hexencode(key).decode().lower().rstrip("=")


def from_id52(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    key = base64.b32hexdecode(padded)
    if len(key) != 32 or id52(key) != text:
        raise ValueError(f"not an ID52: {text}")
    return key


# The echo payload repeats every 65,521 bytes (a prime, so no chunk size lines up with it): a
# shifted, dropped or repeated block shows as a mismatch.
PERIOD = 65521
_BLOCK = bytes(((i * 7) + (i // 251)) & 0xFF for i in range(PERIOD))


def pattern(offset: int, length: int) -> bytes:
    """Bytes offset ..< offset + length of the echo payload."""
    start = offset % PERIOD
    return (_BLOCK * ((start + length) // PERIOD + 1))[start:start + length]


def copy_bytes_with_memmove(iroh) -> None:
    """The bindings (uniffi) copy every byte handed to Rust in a Python loop, about 1 MB/s of
    one core: 64 MiB echoes took over a minute and starved the rest of the suite. This replaces
    that one method with a memmove; what crosses to iroh is byte for byte the same."""
    import ctypes

    def write(self, value):
        count = len(value)
        with self._reserve(count):
            ctypes.memmove(ctypes.addressof(self.rbuf.data.contents) + self.rbuf.len, bytes(value), count)

    iroh.iroh_ffi._UniffiRustBufferBuilder.write = write


async def make_endpoint(iroh, args, bind: str):
    options = iroh.EndpointOptions(
        preset=iroh.preset_n0() if args.dns_discovery else iroh.preset_minimal(),
        relay_mode=iroh.RelayMode.custom_from_urls([args.relay]) if args.relay else iroh.RelayMode.disabled(),
        alpns=[ALPN],
        bind_addr=bind,
        secret_key=args.secret,
    )
    return await iroh.Endpoint.bind(options)


async def announce_home_relay(endpoint, args) -> bool:
    """With --relay: waits (up to --timeout) until the endpoint is online with its home relay and
    prints `RELAY <url>`; False, after `RELAY_ERROR`, if it does not get there."""
    if not args.relay:
        return True
    try:
        await asyncio.wait_for(endpoint.online(), args.timeout)
    except asyncio.TimeoutError:
        say(f"RELAY_ERROR not online with {args.relay} after {args.timeout} s")
        return False
    except Exception as error:
        say("RELAY_ERROR " + json.dumps(describe(error)))
        return False
    say(f"RELAY {endpoint.addr().relay_url()}")
    return True


async def read_line(recv, limit: int = HEADER_LIMIT) -> tuple[bytes, bytes]:
    """The first line (without `\\n`) and whatever came after it in the same reads."""
    buffered = b""
    while b"\n" not in buffered:
        if len(buffered) > limit:
            raise ValueError("header too long")
        chunk = await recv.read(CHUNK)
        if not chunk:
            raise EOFError(f"stream ended before a full line: {buffered!r}")
        buffered += chunk
    line, _, rest = buffered.partition(b"\n")
    return line, rest


# --- server -------------------------------------------------------------------------------------


async def serve_stream(stream) -> None:
    send, recv = stream.send(), stream.recv()
    try:
        line, rest = await read_line(recv)
        header = json.loads(line.decode("utf-8"))
        say("STREAM " + json.dumps(header, separators=(",", ":"), sort_keys=True))
        if header == "Ping":
            await send.write_all(PONG)
            await send.finish()
        elif header == {"Generic": "echo"}:
            await send.write_all(ACK)
            if rest:
                await send.write_all(rest)
            while True:
                chunk = await recv.read(CHUNK)
                if not chunk:
                    break
                await send.write_all(chunk)
            await send.finish()
        else:
            await send.write_all(b"refused: " + line + b"\n")
            await send.finish()
    except Exception as error:  # one stream's failure never ends the connection
        sys.stderr.write(f"iroh_peer: stream: {error!r}\n")


async def serve_connection(connection) -> None:
    say("PEER " + id52(connection.remote_id().to_bytes()))
    tasks = set()
    try:
        while True:
            stream = await connection.accept_bi()
            task = asyncio.ensure_future(serve_stream(stream))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except Exception as error:
        sys.stderr.write(f"iroh_peer: connection ended: {error!r}\n")


async def accept_connection(incoming) -> None:
    try:
        accepting = await incoming.accept()
        connection = await accepting.connect()
    except Exception as error:
        say(f"ACCEPT_ERROR {error!r}")
        return
    await serve_connection(connection)


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.buffer.read)


async def server(iroh, args) -> int:
    endpoint = await make_endpoint(iroh, args, f"{args.host}:0")
    port = None
    for address in endpoint.bound_sockets():
        host, _, text = address.rpartition(":")
        if host == args.host:
            port = int(text)
    if port is None:
        sys.stderr.write(f"iroh_peer: no socket on {args.host}: {endpoint.bound_sockets()}\n")
        return 1
    say(f"READY {port} {id52(endpoint.id().to_bytes())}")
    say("SOCKETS " + " ".join(endpoint.bound_sockets()))
    if not await announce_home_relay(endpoint, args):
        return 1
    tasks = set()

    async def accept_loop():
        while True:
            incoming = await endpoint.accept_next()
            if incoming is None:
                return
            task = asyncio.ensure_future(accept_connection(incoming))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    accepting = asyncio.ensure_future(accept_loop())
    await stdin_closed()
    accepting.cancel()
    await endpoint.close()
    return 0


# --- client -------------------------------------------------------------------------------------


async def ping(connection) -> str:
    stream = await connection.open_bi()
    send, recv = stream.send(), stream.recv()
    await send.write_all(b'"Ping"\n')
    data = await recv.read_to_end(1 << 20)
    try:
        await send.finish()
    except Exception:
        pass  # the peer may have stopped our sending side already
    return "PONG ok" if data == PONG else "PONG bad " + json.dumps(data.decode("utf-8", "backslashreplace"))


async def echo(connection, size: int) -> tuple[bool, str]:
    stream = await connection.open_bi()
    send, recv = stream.send(), stream.recv()
    await send.write_all(b'{"Generic":"echo"}\n')
    line, rest = await read_line(recv)
    if line != b"ack":
        return False, "no ack: " + json.dumps(line.decode("utf-8", "backslashreplace"))

    async def writer():
        offset = 0
        while offset < size:
            length = min(CHUNK, size - offset)
            await send.write_all(pattern(offset, length))
            offset += length
        await send.finish()

    writing = asyncio.ensure_future(writer())
    received = len(rest)
    mismatch = None
    if rest and rest != pattern(0, len(rest)):
        mismatch = 0
    while True:
        chunk = await recv.read(CHUNK)
        if not chunk:
            break
        if mismatch is None and chunk != pattern(received, len(chunk)):
            mismatch = received
        received += len(chunk)
        if received > size:
            break
    await writing
    if mismatch is not None:
        return False, f"mismatch at or after byte {mismatch}"
    if received != size:
        return False, f"received {received} of {size} bytes"
    return True, ""


async def client(iroh, args) -> int:
    endpoint = await make_endpoint(iroh, args, "127.0.0.1:0")
    say("ID " + id52(endpoint.id().to_bytes()))
    if not await announce_home_relay(endpoint, args):
        return 1
    target = iroh.EndpointAddr(iroh.EndpointId.from_bytes(from_id52(args.peer)), args.relay_url,
                               [args.addr] if args.addr else [])
    started = time.monotonic()
    try:
        connection = await endpoint.connect(target, ALPN)
    except Exception as error:
        say("CONNECT_ERROR " + json.dumps(describe(error)))
        return 1
    say("CONNECTED " + id52(connection.remote_id().to_bytes()))
    say(f"TIMING connect {(time.monotonic() - started) * 1000:.2f} ms")
    if args.mode == "ping":
        for _ in range(args.count):
            started = time.monotonic()
            say(await ping(connection))
            say(f"TIMING ping {(time.monotonic() - started) * 1000:.2f} ms")
    elif args.mode == "echo":
        start = time.monotonic()
        ok, details = await echo(connection, args.bytes)
        elapsed = time.monotonic() - start
        say(f"ECHO ok {args.bytes} {elapsed:.3f}" if ok else f"ECHO bad {details}")
    elif args.mode == "hold":
        # An echo stream that never ends: writes and reads until the test kills us.
        stream = await connection.open_bi()
        send, recv = stream.send(), stream.recv()
        await send.write_all(b'{"Generic":"echo"}\n')

        async def drain():
            while await recv.read(CHUNK):
                pass

        draining = asyncio.ensure_future(drain())
        offset = 0
        while True:
            await send.write_all(pattern(offset, 16 * 1024))
            offset += 16 * 1024
            if offset == 256 * 1024:
                say(f"HOLDING {offset}")
    elif args.mode == "concurrent":
        results = await asyncio.gather(*(echo(connection, 4096) for _ in range(args.streams)))
        bad = [details for ok, details in results if not ok]
        say(f"CONCURRENT ok {len(results)}" if not bad else f"CONCURRENT bad {len(bad)} failed: {bad[0]}")
    connection.close(0, b"done")
    await endpoint.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", choices=["server", "client"])
    parser.add_argument("--secret", type=bytes.fromhex, default=None, help="32-byte ed25519 seed, hex")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--peer")
    parser.add_argument("--addr")
    parser.add_argument("--relay", help="home relay URL (default: no relay)")
    parser.add_argument("--relay-url", help="client: the peer's relay, put in the address dialled")
    parser.add_argument("--dns-discovery", action="store_true", help="n0 preset: DNS address lookup")
    parser.add_argument("--mode", choices=["ping", "echo", "concurrent", "hold"], default="ping")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    if args.role == "client" and not args.peer:
        parser.error("client needs --peer")
    if args.role == "client" and not (args.addr or args.relay_url or args.dns_discovery):
        parser.error("client needs --addr, --relay-url or --dns-discovery to find --peer")

    require_loopback_only_namespace()
    import iroh  # only now: importing is harmless, binding is not
    copy_bytes_with_memmove(iroh)

    async def run() -> int:
        if args.role == "server":
            return await server(iroh, args)
        return await asyncio.wait_for(client(iroh, args), args.timeout)

    try:
        return asyncio.run(run())
    except asyncio.TimeoutError:
        sys.stderr.write(f"iroh_peer: timed out after {args.timeout} s\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
