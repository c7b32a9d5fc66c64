#!/usr/bin/env python3
"""Send one line to a peer's echo protocol through a peerpool supervisor and print the echo.

    python3 echo.py --endpoint ipc:///run/user/1000/peerpool/frontend.sock \\
                    --peer ID52@127.0.0.1:4433 --line "hello"
    python3 echo.py --endpoint ipc:///run/user/1000/peerpool/frontend.sock --status

Exit status 0 on success; on an error, "error: <code>: <message>" on stderr and exit status 1.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerpool_client import Client, PeerpoolError  # noqa: E402


def parse_peer(text):
    """ "ID52@host:port" -> (ID52, "host:port"); "ID52" alone -> (ID52, None)."""
    remote, sep, address = text.partition("@")
    return remote, (address if sep else None)


def echo(client, peer, line, timeout):
    remote, address = parse_peer(peer)
    stream = client.open_stream(remote, {"Generic": "echo"}, address=address,
                                timeout_ms=int(timeout * 1000))
    with stream:
        stream.send(line.encode("utf-8") + b"\n")
        stream.finish()
        received = bytearray()
        while (chunk := stream.recv()) is not None:  # until the peer's FINISH
            received += chunk
    if received.endswith(b"\n"):
        del received[-1:]
    sys.stdout.buffer.write(bytes(received) + b"\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the supervisor's frontend, e.g. ipc:///path/frontend.sock")
    parser.add_argument("--peer", help="ID52@host:port of a peer listening with the echo protocol")
    parser.add_argument("--line", default="hello", help="the line to send (default: hello)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for each wait (default: 10)")
    parser.add_argument("--status", action="store_true", help="print the supervisor's status JSON instead")
    args = parser.parse_args()
    if not args.status and not args.peer:
        parser.error("--peer is required (or use --status)")

    client = Client(args.endpoint, timeout=args.timeout)
    try:
        if args.status:
            print(json.dumps(client.status(), indent=2, sort_keys=True))
        else:
            echo(client, args.peer, args.line, args.timeout)
    except PeerpoolError as e:
        print(f"error: {e.code}: {e.message}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
