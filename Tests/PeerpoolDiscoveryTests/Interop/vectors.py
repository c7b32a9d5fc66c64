"""Independent reference values for PeerpoolDiscoveryTests, written from the specifications
without looking at the Swift code: z-base-32, pkarr signed packets (dnslib builds and parses the
DNS part, cryptography signs and verifies with ed25519).

  vectors.py zbase32 HEX                     -> z-base-32 of the bytes
  vectors.py pkarr SEED_HEX TS VALUE...      -> hex of key|sig|ts|dns for TXT _iroh.<z32> values
  vectors.py pkarr-forged SEED TS OTHER_SEED VALUE... -> the same, signed by OTHER_SEED's key
  vectors.py pkarr-read HEX                  -> verifies, prints ts, then "name ttl value" lines
"""
import struct
import sys

import dnslib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ZB32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def zbase32(data: bytes) -> str:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(ZB32[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


def public(seed_hex: str) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def pkarr(seed_hex: str, ts: int, values, signer_hex=None) -> bytes:
    key = public(seed_hex)
    reply = dnslib.DNSRecord(dnslib.DNSHeader(id=0, qr=1, aa=1, rd=0))
    name = f"_iroh.{zbase32(key)}"
    for value in values:
        reply.add_answer(dnslib.RR(name, dnslib.QTYPE.TXT, rdata=dnslib.TXT(value), ttl=30))
    packet = reply.pack()
    signable = f"3:seqi{ts}e1:v{len(packet)}:".encode() + packet
    signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(signer_hex or seed_hex))
    return key + signer.sign(signable) + struct.pack(">Q", ts) + packet


def read(hex_packet: str):
    data = bytes.fromhex(hex_packet)
    key, sig, (ts,), packet = data[:32], data[32:96], struct.unpack(">Q", data[96:104]), data[104:]
    assert len(packet) <= 1000, "dns part over 1000 bytes"
    Ed25519PublicKey.from_public_bytes(key).verify(sig, f"3:seqi{ts}e1:v{len(packet)}:".encode() + packet)
    print(ts)
    for rr in dnslib.DNSRecord.parse(packet).rr:
        value = b"".join(rr.rdata.data).decode()
        print(str(rr.rname).rstrip("."), rr.ttl, value)


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "zbase32":
        print(zbase32(bytes.fromhex(args[0])))
    elif command == "pkarr":
        print(pkarr(args[0], int(args[1]), args[2:]).hex())
    elif command == "pkarr-forged":
        print(pkarr(args[0], int(args[1]), args[3:], signer_hex=args[2]).hex())
    elif command == "pkarr-read":
        read(args[0])
    else:
        sys.exit(f"unknown command {command}")
