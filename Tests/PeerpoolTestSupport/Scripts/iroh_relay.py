"""An iroh relay for tests, written from the protocol (docs: /work/shared/TOOLCHAIN.md, "iroh
relay"), independent of the Swift client: plain HTTP/1.1 on 127.0.0.1, the WebSocket upgrade
and framing by hand, Ed25519 from `cryptography`, BLAKE3's derive_key in pure Python.

  iroh_relay.py [--port N] [--v1] [--refuse REASON] [--garbage-once] [--no-pong] [--tls-dir DIR]
                [--receive-buffer BYTES] [--log-pings]

GET /ping answers 200 (iroh's latency probe). GET /relay upgrades to a WebSocket with the
subprotocol iroh-relay-v2 (or v1: the client's offer, or only v1 with --v1) and runs the
handshake: challenge (0), the client's signed answer (1), then 2 (accepted) or 3 with a reason
(--refuse REASON, or a bad signature). Afterwards: datagrams (4) and batches (5) go to the
destination as 6 / 7 with the source's key; a destination not connected here gets
"endpoint gone" (8) back, and everyone who sent to a client gets 8 when it leaves. Pings (9)
are answered (10). A second connection with the same key takes over; the older one is told
status 1 (v2) or a health text (v1). --garbage-once sends an undecodable frame right after the
first accepted handshake, to test that clients drop the connection and come back; --no-pong
leaves pings unanswered, to test that clients give up on a silent relay. --tls-dir DIR serves
HTTPS instead, with a self-signed certificate for localhost and 127.0.0.1 written to
DIR/cert.pem (the client's trust root) and DIR/key.pem. --receive-buffer caps each accepted
socket's SO_RCVBUF, so that a relay told to pause pushes back on its clients quickly.
--log-pings prints "PING <hex key>" for each ping answered.

Stdout, one line per event: "LISTENING <port>" first, then "ACCEPTED <hex key> <v1|v2>",
"REFUSED <hex key>", "GONE <hex key>", "GARBAGE <hex key>". Stdin: "restarting <ms> <ms>"
sends frame 12 to every client; "pause" stops reading from clients ("PAUSED" once done),
"resume" reads again ("RESUMED"); "stats" prints "STATS forwarded <frames> <bytes> dropped
<frames> gone <frames>" (datagram frames passed on, their bytes after the destination key,
frames dropped for a slow destination, sends answered "endpoint gone"), so a test can tell
traffic went through the relay; EOF exits. The listening socket uses SO_REUSEADDR, so a
relay killed mid-test can be started again on the same port.
"""
import argparse
import asyncio
import base64
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import struct
import sys
import threading

from cryptography.exceptions import InvalidSignature
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

CHALLENGE_CONTEXT = b"iroh-relay handshake v1 challenge signature"
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 64 * 1024 + 64
MAX_QUEUED = 4 << 20

# --- BLAKE3, enough for inputs of one chunk (1024 bytes): derive_key over a short context and
# a 16-byte challenge never needs the tree.
IV = [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19]
PERMUTATION = [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8]
CHUNK_START, CHUNK_END, ROOT, DERIVE_KEY_CONTEXT, DERIVE_KEY_MATERIAL = 1, 2, 8, 32, 64
MASK = 0xFFFFFFFF


def _rotr(x, n):
    return ((x >> n) | (x << (32 - n))) & MASK


def _g(s, a, b, c, d, x, y):
    s[a] = (s[a] + s[b] + x) & MASK
    s[d] = _rotr(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotr(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b] + y) & MASK
    s[d] = _rotr(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & MASK
    s[b] = _rotr(s[b] ^ s[c], 7)


def _compress(cv, block, block_len, flags):
    m = list(struct.unpack("<16I", block))
    s = list(cv) + IV[:4] + [0, 0, block_len, flags]
    for round_number in range(7):
        for i, (a, b, c, d) in enumerate([(0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
                                          (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14)]):
            _g(s, a, b, c, d, m[2 * i], m[2 * i + 1])
        if round_number < 6:
            m = [m[p] for p in PERMUTATION]
    return [s[i] ^ s[i + 8] for i in range(8)]


def blake3_single_chunk(data, key_words, flags):
    if len(data) > 1024:
        raise ValueError("this BLAKE3 handles one chunk only")
    blocks = [data[i:i + 64] for i in range(0, len(data), 64)] or [b""]
    cv = key_words
    for index, block in enumerate(blocks):
        block_flags = flags | (CHUNK_START if index == 0 else 0)
        if index == len(blocks) - 1:
            block_flags |= CHUNK_END | ROOT
        cv = _compress(cv, block.ljust(64, b"\0"), len(block), block_flags)
    return struct.pack("<8I", *cv)


def derive_key(context, material):
    context_key = blake3_single_chunk(context, IV, DERIVE_KEY_CONTEXT)
    return blake3_single_chunk(material, list(struct.unpack("<8I", context_key)), DERIVE_KEY_MATERIAL)


# --- QUIC varints and relay frames
def varint(value):
    if value < 1 << 6:
        return bytes([value])
    if value < 1 << 14:
        return struct.pack(">H", value | 0x4000)
    if value < 1 << 30:
        return struct.pack(">I", value | 0x80000000)
    return struct.pack(">Q", value | 0xC000000000000000)


def read_varint(data):
    """(value, length) or None when cut off."""
    if not data:
        return None
    length = 1 << (data[0] >> 6)
    if len(data) < length:
        return None
    value = data[0] & 0x3F
    for byte in data[1:length]:
        value = value << 8 | byte
    return value, length


class ProtocolError(Exception):
    pass


# --- WebSocket framing (RFC 6455): client frames are masked, ours are not.
def unmask(data, mask):
    """XOR with the repeated 4-byte mask, as one big-integer operation (a byte loop in Python
    would cap the relay at a few MB/s)."""
    count = len(data)
    key = (mask * (count // 4 + 1))[:count]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(count, "little")


class WebSocket:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def receive(self):
        """The next binary message (fragments joined); None when the peer closed."""
        message, opcode = b"", None
        while True:
            head = await self.reader.readexactly(2)
            fin, op, masked, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", await self.reader.readexactly(8))
            if not masked:
                raise ProtocolError("unmasked client frame")
            if length > MAX_MESSAGE or len(message) + length > MAX_MESSAGE:
                raise ProtocolError(f"message over {MAX_MESSAGE} bytes")
            mask = await self.reader.readexactly(4)
            payload = unmask(await self.reader.readexactly(length), mask)
            if op == 8:
                self.send_raw(8, payload[:2])
                return None
            if op == 9:
                self.send_raw(10, payload)
                continue
            if op == 10:
                continue
            if op in (1, 2):
                if opcode is not None:
                    raise ProtocolError("new message inside a fragmented one")
                opcode = op
            elif op != 0 or opcode is None:
                raise ProtocolError(f"unexpected opcode {op}")
            message += payload
            if fin:
                if opcode != 2:
                    raise ProtocolError("text message on a binary protocol")
                return message

    def send_raw(self, opcode, payload):
        length = len(payload)
        if length < 126:
            head = bytes([0x80 | opcode, length])
        elif length < 1 << 16:
            head = bytes([0x80 | opcode, 126]) + struct.pack(">H", length)
        else:
            head = bytes([0x80 | opcode, 127]) + struct.pack(">Q", length)
        self.writer.write(head + payload)

    def send(self, frame_type, payload=b""):
        self.send_raw(2, varint(frame_type) + payload)


# --- the relay
class Client:
    def __init__(self, key, socket, version):
        self.key, self.socket, self.version = key, socket, version
        self.sent_to = set()


class Relay:
    def __init__(self, options):
        self.options = options
        self.clients = {}
        self.garbage_sent = False
        self.reading = asyncio.Event()
        self.reading.set()
        self.forwarded = self.forwarded_bytes = self.dropped = self.gone = 0

    async def handle(self, reader, writer):
        if self.options.receive_buffer:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.options.receive_buffer)
        try:
            await self.serve(reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ProtocolError, ValueError,
                ssl.SSLError) as error:
            print(f"LOG connection ended: {error!r}", file=sys.stderr, flush=True)
        finally:
            writer.close()

    async def serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > 16384:
            raise ProtocolError("request head too long")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if method == "GET" and path == "/ping":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\npong")
            return await writer.drain()
        if method != "GET" or path != "/relay" or headers.get("upgrade", "").lower() != "websocket":
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return await writer.drain()
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        supported = ["iroh-relay-v1"] if self.options.v1 else ["iroh-relay-v2", "iroh-relay-v1"]
        chosen = next((p for p in supported if p in offered), None)
        if chosen is None:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return await writer.drain()
        accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WEBSOCKET_GUID).digest())
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: " + chosen.encode() + b"\r\n\r\n")
        socket = WebSocket(reader, writer)
        client = await self.handshake(socket, chosen[-2:])
        if client is None:
            return await writer.drain()
        try:
            await self.relay(client)
        finally:
            self.leave(client)

    async def handshake(self, socket, version):
        challenge = os.urandom(16)
        socket.send(0, challenge)
        message = await socket.receive()
        if message is None or len(message) != 1 + 32 + 1 + 64 or message[0] != 1 or message[33] != 0x40:
            raise ProtocolError("expected a client auth frame")
        key, signature = message[1:33], message[34:]
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, derive_key(CHALLENGE_CONTEXT, challenge))
            reason = self.options.refuse
        except InvalidSignature:
            reason = "the challenge signature does not verify"
        if reason is not None:
            encoded = reason.encode()
            socket.send(3, varint(len(encoded)) + encoded)
            print(f"REFUSED {key.hex()}", flush=True)
            return None
        socket.send(2)
        client = Client(key, socket, version)
        previous = self.clients.get(key)
        if previous is not None:
            self.tell_status(previous, 1, "another connection with this endpoint id took over")
        self.clients[key] = client
        print(f"ACCEPTED {key.hex()} {version}", flush=True)
        if self.options.garbage_once and not self.garbage_sent:
            self.garbage_sent = True
            socket.send_raw(2, bytes([6, 1, 2, 3]))  # a received datagram cut off inside its source key
            print(f"GARBAGE {key.hex()}", flush=True)
        return client

    def tell_status(self, client, code, text):
        if client.version == "v2":
            client.socket.send(13, varint(code))
        else:
            client.socket.send(11, text.encode())

    async def relay(self, client):
        while True:
            await client.socket.writer.drain()
            await self.reading.wait()
            message = await client.socket.receive()
            if message is None:
                return
            decoded = read_varint(message)
            if decoded is None:
                raise ProtocolError("frame without a type")
            frame_type, used = decoded
            payload = message[used:]
            if frame_type in (4, 5):
                header = 33 if frame_type == 4 else 35
                if len(payload) < header or payload[32] > 3:
                    raise ProtocolError(f"malformed send frame {frame_type}")
                self.forward(client, payload[:32], frame_type + 2, payload[32:])
            elif frame_type == 9:
                if len(payload) != 8:
                    raise ProtocolError("ping payload is not 8 bytes")
                if not self.options.no_pong:
                    client.socket.send(10, payload)
                    if self.options.log_pings:
                        print(f"PING {client.key.hex()}", flush=True)
            elif frame_type == 10:
                pass
            else:
                print(f"LOG ignored frame type {frame_type}", file=sys.stderr, flush=True)

    def forward(self, source, destination, frame_type, rest):
        target = self.clients.get(destination)
        if target is None:
            self.gone += 1
            source.socket.send(8, destination)
            return
        source.sent_to.add(destination)
        if target.socket.writer.transport.get_write_buffer_size() > MAX_QUEUED:
            self.dropped += 1
            return  # the destination is not keeping up: drop, as iroh's relay does
        self.forwarded += 1
        self.forwarded_bytes += len(rest)
        target.socket.send(frame_type, source.key + rest)

    def leave(self, client):
        if self.clients.get(client.key) is not client:
            return
        del self.clients[client.key]
        print(f"GONE {client.key.hex()}", flush=True)
        for other in self.clients.values():
            if client.key in other.sent_to or other.key in client.sent_to:
                other.socket.send(8, client.key)

    def pause(self):
        self.reading.clear()
        print("PAUSED", flush=True)

    def resume(self):
        self.reading.set()
        print("RESUMED", flush=True)

    def restarting(self, reconnect_in, try_for):
        for client in self.clients.values():
            client.socket.send(12, struct.pack(">II", reconnect_in, try_for))

    def print_stats(self):
        print(f"STATS forwarded {self.forwarded} {self.forwarded_bytes} dropped {self.dropped} gone {self.gone}", flush=True)


def tls_context(directory):
    """A server context with a fresh self-signed P-256 certificate for localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as file:
        file.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as file:
        file.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def read_commands(loop, relay, done):
    for line in sys.stdin:
        words = line.split()
        if len(words) == 3 and words[0] == "restarting":
            loop.call_soon_threadsafe(relay.restarting, int(words[1]), int(words[2]))
        elif words == ["pause"]:
            loop.call_soon_threadsafe(relay.pause)
        elif words == ["resume"]:
            loop.call_soon_threadsafe(relay.resume)
        elif words == ["stats"]:
            loop.call_soon_threadsafe(relay.print_stats)
    loop.call_soon_threadsafe(done.set)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--v1", action="store_true")
    parser.add_argument("--refuse")
    parser.add_argument("--garbage-once", action="store_true")
    parser.add_argument("--no-pong", action="store_true")
    parser.add_argument("--tls-dir")
    parser.add_argument("--receive-buffer", type=int)
    parser.add_argument("--log-pings", action="store_true")
    options = parser.parse_args()
    relay = Relay(options)
    context = tls_context(options.tls_dir) if options.tls_dir else None
    server = await asyncio.start_server(relay.handle, "127.0.0.1", options.port, reuse_address=True, ssl=context)
    print(f"LISTENING {server.sockets[0].getsockname()[1]}", flush=True)
    done = asyncio.Event()
    threading.Thread(target=read_commands, args=(asyncio.get_running_loop(), relay, done), daemon=True).start()
    await done.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
