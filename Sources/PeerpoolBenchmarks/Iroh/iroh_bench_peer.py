"""A real iroh endpoint (PyPI `iroh`, the Python bindings of iroh 1.4.1) for `peerpool-bench iroh`.

Speaks fastn's stream protocol on ALPN /fastn/entity/0.1: a JSON protocol line, an optional
extra line, the answer `ack`. Relays and address lookup are off; the port mapper cannot be
switched off from Python and probes the LAN gateway, so run this only inside a network namespace
that has nothing but loopback (`peerpool-bench iroh` makes one).

Roles (one JSON line of figures on stdout when done, `READY ...` lines before):
  serve                      serve Ping, {"Generic":"sink"}, {"Generic":"source"} and
                             {"Generic":"echo"} until stdin closes; prints READY <id52> <host:port>
  send --peer ID52@H:P --bytes N
                             connect, ping, then write N bytes to a sink in 1 MiB chunks
  hold --peer ID52@H:P --count N
                             open N connections (one endpoint each) and hold them until stdin
                             closes; prints READY <rss-kib-before> <rss-kib-after>

Every role takes --relay URL (the endpoint's home relay, waited for before READY or sending)
and send takes --via-relay URL (dial the peer by its ID through that relay, no address):
`peerpool-bench relay` runs them with UDP blocked, so only the relay carries the bytes.
"""
import argparse
import asyncio
import base64
import ctypes
import json
import resource
import sys
import time

import iroh

ALPN = b"/fastn/entity/0.1"
CHUNK = 1 << 20  # large chunks: each call crosses the Python <-> Rust boundary
SINK_LIMIT = 1 << 31  # a sink holds what it read until the end: benchmarks send at most this


def copy_bytes_with_memmove() -> None:
    """The bindings (uniffi) copy every byte handed to Rust in a Python loop: 64 MiB cost the
    sender ~15 CPU-seconds, which is the bindings' cost, not iroh's. This replaces that one
    method with a memmove, so the figures measure iroh (`peerpool-bench iroh` says so)."""
    builder = iroh.iroh_ffi._UniffiRustBufferBuilder

    def write(self, value):
        count = len(value)
        with self._reserve(count):
            target = ctypes.addressof(self.rbuf.data.contents) + self.rbuf.len
            ctypes.memmove(target, bytes(value), count)

    builder.write = write


def id52(key: bytes) -> str:
    return base64.b32hexencode(key).decode().rstrip("=").lower()


def key_of(text: str) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    return base64.b32hexdecode(padded)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


RELAY = None  # --relay: the home relay's URL
VIA_RELAY = None  # --via-relay: dial peers by ID through this relay only


async def bind() -> "iroh.Endpoint":
    options = iroh.EndpointOptions(
        preset=iroh.preset_minimal(), bind_addr="127.0.0.1:0", alpns=[ALPN],
        relay_mode=iroh.RelayMode.custom_from_urls([RELAY]) if RELAY else iroh.RelayMode.disabled())
    endpoint = await iroh.Endpoint.bind(options)
    if RELAY:
        await asyncio.wait_for(endpoint.online(), 30)
    return endpoint


def listening_address(endpoint) -> str:
    for address in endpoint.bound_sockets():
        if address.startswith("127.0.0.1:"):
            return address
    return endpoint.bound_sockets()[0]


async def read_line(recv, buffered: bytearray) -> bytes:
    while b"\n" not in buffered:
        chunk = await recv.read(65536)
        if not chunk:
            raise EOFError("stream ended before a full line")
        buffered += chunk
        if len(buffered) > 65536:
            raise ValueError("header line over 64 KiB")
    line, _, rest = bytes(buffered).partition(b"\n")
    buffered[:] = rest
    return line


async def serve_stream(bi) -> None:
    send, recv = bi.send(), bi.recv()
    buffered = bytearray()
    protocol = json.loads(await read_line(recv, buffered))
    if protocol == "Ping":
        await send.write_all(b"ack\npong\n")
    elif protocol == {"Generic": "sink"}:
        await send.write_all(b"ack\n")
        # One call for the whole stream: chunked reads return what one packet carried, and each
        # call crosses the Python <-> Rust boundary (~64 MiB of 1.2 KB reads cost seconds).
        count = len(buffered) + len(await recv.read_to_end(SINK_LIMIT))
        await send.write_all(f"{count}\n".encode())
    elif protocol == {"Generic": "source"}:
        count = int(await read_line(recv, buffered))
        await send.write_all(b"ack\n")
        block = bytes(CHUNK)
        while count > 0:
            await send.write_all(block[: min(count, CHUNK)])
            count -= min(count, CHUNK)
    elif protocol == {"Generic": "echo"}:
        await send.write_all(b"ack\n")
        if buffered:
            await send.write_all(bytes(buffered))
        while True:
            chunk = await recv.read(CHUNK)
            if not chunk:
                break
            await send.write_all(chunk)
    else:
        await send.write_all(f"refused: {json.dumps(protocol)} is not served here\n".encode())
    await send.finish()


async def serve_connection(incoming) -> None:
    try:
        connection = await (await incoming.accept()).connect()
        while True:
            bi = await connection.accept_bi()
            asyncio.ensure_future(serve_stream(bi))
    except Exception:
        pass


async def serve() -> None:
    endpoint = await bind()
    print(f"READY {id52(endpoint.id().to_bytes())} {listening_address(endpoint)}", flush=True)

    async def accept_loop():
        while True:
            incoming = await endpoint.accept_next()
            if incoming is None:
                return
            asyncio.ensure_future(serve_connection(incoming))

    accepting = asyncio.ensure_future(accept_loop())
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    accepting.cancel()
    await endpoint.close()


def peer_addr(text: str) -> "iroh.EndpointAddr":
    name, _, host_port = text.partition("@")
    if VIA_RELAY:
        return iroh.EndpointAddr(iroh.EndpointId.from_bytes(key_of(name)), VIA_RELAY, [])
    return iroh.EndpointAddr(iroh.EndpointId.from_bytes(key_of(name)), None, [host_port])


async def send(peer: str, total: int) -> None:
    endpoint = await bind()
    start = time.perf_counter()
    connection = await endpoint.connect(peer_addr(peer), ALPN)
    connected = time.perf_counter()
    bi = await connection.open_bi()
    await bi.send().write_all(b'"Ping"\n')
    await bi.send().finish()
    answer = await bi.recv().read_to_end(64)
    pinged = time.perf_counter()
    assert answer == b"ack\npong\n", answer

    cpu_before = cpu_seconds()
    began = time.perf_counter()
    bi = await connection.open_bi()
    sender, receiver = bi.send(), bi.recv()
    await sender.write_all(b'{"Generic":"sink"}\n')
    buffered = bytearray()
    ack = await read_line(receiver, buffered)
    assert ack == b"ack", ack
    block = bytes(CHUNK)
    left = total
    while left > 0:
        await sender.write_all(block[: min(left, CHUNK)])
        left -= min(left, CHUNK)
    await sender.finish()
    counted = int(await read_line(receiver, buffered))
    ended = time.perf_counter()
    assert counted == total, (counted, total)
    print(json.dumps({
        "connect_ms": (connected - start) * 1000, "first_ping_ms": (pinged - connected) * 1000,
        "connect_and_ping_ms": (pinged - start) * 1000, "seconds": ended - began, "bytes": total,
        "cpu_s": cpu_seconds() - cpu_before}), flush=True)
    connection.close(0, b"done")
    await endpoint.close()


async def hold(peer: str, count: int) -> None:
    endpoint = await bind()
    before = rss_kib()
    address = peer_addr(peer)
    connections = []
    for _ in range(count):
        connections.append(await endpoint.connect(address, ALPN))
    stable = {c.stable_id() for c in connections}
    print(f"READY {before} {rss_kib()} {len(stable)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for connection in connections:
        connection.close(0, b"done")
    await endpoint.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["serve", "send", "hold"])
    parser.add_argument("--peer")
    parser.add_argument("--bytes", type=int, default=64 << 20)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--relay", help="home relay URL")
    parser.add_argument("--via-relay", help="dial the peer by ID through this relay only")
    parser.add_argument("--python-byte-copy", action="store_true",
                        help="keep the bindings' own per-byte copy (to measure what it costs)")
    arguments = parser.parse_args()
    global RELAY, VIA_RELAY
    RELAY, VIA_RELAY = arguments.relay, arguments.via_relay
    if not arguments.python_byte_copy:
        copy_bytes_with_memmove()
    if arguments.role == "serve":
        asyncio.run(serve())
    elif arguments.role == "send":
        asyncio.run(send(arguments.peer, arguments.bytes))
    else:
        asyncio.run(hold(arguments.peer, arguments.count))


if __name__ == "__main__":
    main()
