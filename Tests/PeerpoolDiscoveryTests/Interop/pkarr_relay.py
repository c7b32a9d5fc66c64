"""A pkarr relay on 127.0.0.1 (HTTP, random port) for PeerpoolDiscoveryTests, verifying every
packet independently of the Swift code (cryptography's ed25519, dnslib for the records).

  pkarr_relay.py [--refuse STATUS] [--forged Z32] [--dns-port N [--origin ORIGIN]]

PUT /<z32>: the body is sig[64] | timestamp u64 BE | DNS packet; a bad signature gets 400, a
timestamp not newer than the stored one 409, else 204 and "PUT <z32> <ts> <txt>,<txt>..." on
stdout. --refuse answers every PUT with STATUS. GET /<z32>: 200 with the stored body, or 404;
with --forged Z32, GET /Z32 serves a packet for that key signed by some other key.
Prints "LISTENING <port>" first; exits at EOF on stdin.

--dns-port N also answers DNS on UDP 127.0.0.1:N (N = 53 inside a network namespace whose
resolv.conf names 127.0.0.1, where iroh's DNS address lookup asks) from the stored packets, as
iroh's DNS server does: `TXT _iroh.<z32>.<ORIGIN>` (default origin dns.iroh.link) gets the TXT
records of <z32>'s packet named `_iroh.<z32>` (or `_iroh`), with their TTLs; anything else
NXDOMAIN. It prints "QUERY <name> <answers>" for every query, after "LISTENING".
"""
import os
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dnslib
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vectors import ZB32, pkarr  # noqa: E402


def zbase32_decode(text: str) -> bytes:
    bits = "".join(f"{ZB32.index(c):05b}" for c in text)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits) - 7, 8))


store = {}
refuse = None
forged = None


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        z32 = self.path.rsplit("/", 1)[-1]
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if refuse:
            return self.answer(refuse, b"refused by test")
        sig, (ts,), packet = body[:64], struct.unpack(">Q", body[64:72]), body[72:]
        try:
            key = zbase32_decode(z32)
            Ed25519PublicKey.from_public_bytes(key).verify(sig, f"3:seqi{ts}e1:v{len(packet)}:".encode() + packet)
        except (InvalidSignature, ValueError) as error:
            return self.answer(400, f"bad packet: {error!r}".encode())
        if z32 in store and struct.unpack(">Q", store[z32][64:72])[0] >= ts:
            return self.answer(409, b"older than stored")
        store[z32] = body
        values = [b"".join(rr.rdata.data).decode() for rr in dnslib.DNSRecord.parse(packet).rr]
        print(f"PUT {z32} {ts} {','.join(values)}", flush=True)
        self.answer(204)

    def do_GET(self):
        z32 = self.path.rsplit("/", 1)[-1]
        if z32 == forged:
            other = Ed25519PrivateKey.generate().private_bytes_raw().hex()
            body = pkarr_for_key(zbase32_decode(z32), other)
            return self.answer(200, body)
        if z32 not in store:
            return self.answer(404)
        self.answer(200, store[z32])


def pkarr_for_key(key: bytes, signer_seed_hex: str) -> bytes:
    """A packet naming `key`, signed by another key: what a forger would serve."""
    full = pkarr(signer_seed_hex, 1, ["addr=127.0.0.1:1"])
    return full[32:]


class StoreResolver:
    """DNS answers from `store`, for names `_iroh.<z32>.<origin>`."""

    def __init__(self, origin: str):
        self.origin = origin.lower().strip(".")

    def resolve(self, request, handler):
        name = str(request.q.qname).rstrip(".").lower()
        reply = request.reply()
        answers = []
        labels = name.split(".")
        if (request.q.qtype == dnslib.QTYPE.TXT and len(labels) > 2 and labels[0] == "_iroh"
                and ".".join(labels[2:]) == self.origin and labels[1] in store):
            z32 = labels[1]
            for rr in dnslib.DNSRecord.parse(store[z32][72:]).rr:
                if rr.rtype == dnslib.QTYPE.TXT and str(rr.rname).rstrip(".").lower() in ("_iroh", f"_iroh.{z32}"):
                    answers.append(b"".join(rr.rdata.data).decode())
                    reply.add_answer(dnslib.RR(request.q.qname, dnslib.QTYPE.TXT, rdata=rr.rdata, ttl=rr.ttl))
        if not answers:
            reply.header.rcode = dnslib.RCODE.NXDOMAIN
        print(f"QUERY {name} {','.join(answers) or '-'}", flush=True)
        return reply


def serve_dns(port: int, origin: str):
    from dnslib.server import DNSLogger, DNSServer
    server = DNSServer(StoreResolver(origin), address="127.0.0.1", port=port,
                       logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    return server


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--refuse" in args:
        refuse = int(args[args.index("--refuse") + 1])
    if "--forged" in args:
        forged = args[args.index("--forged") + 1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if "--dns-port" in args:
        origin = args[args.index("--origin") + 1] if "--origin" in args else "dns.iroh.link"
        serve_dns(int(args[args.index("--dns-port") + 1]), origin)
    print(f"LISTENING {server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.shutdown()
