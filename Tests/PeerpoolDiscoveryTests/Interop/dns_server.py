"""A DNS server on 127.0.0.1 (UDP, random port) for PeerpoolDiscoveryTests, built on dnslib.

  dns_server.py ZONE_JSON

ZONE_JSON maps a name (no trailing dot) to a list of [ttl, "txt value"] pairs, or to the string
"SERVFAIL" or "TRUNCATE". Other names get NXDOMAIN. Prints "LISTENING <port>", then
"QUERY <name>" for every query it receives, before answering it. Exits at EOF on stdin.
"""
import json
import sys

from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSLogger, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, zone):
        self.zone = {name.lower().rstrip("."): answer for name, answer in zone.items()}

    def resolve(self, request, handler):
        name = str(request.q.qname).rstrip(".")
        print(f"QUERY {name}", flush=True)
        reply = request.reply()
        answer = self.zone.get(name.lower())
        if answer is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif answer == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
        elif answer == "TRUNCATE":
            reply.header.tc = 1
        elif request.q.qtype == QTYPE.TXT:
            for ttl, value in answer:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=ttl))
        return reply


if __name__ == "__main__":
    server = DNSServer(ZoneResolver(json.loads(sys.argv[1])), address="127.0.0.1", port=0,
                       logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    print(f"LISTENING {server.server.server_address[1]}", flush=True)
    sys.stdin.read()
    server.stop()
