#!/usr/bin/env python3
"""Send malformed messages to a peerpool supervisor and print how it answers each.

    python3 garbage.py --endpoint ipc:///run/user/1000/peerpool/frontend.sock [--timeout 5]

All cases go over one DEALER connection, one after the other. For each case one line:

    <case> <reply-type-hex> <code>     e.g.  version_2 0x82 unsupported_version
    <case> timeout                     no ERROR (0x82) or ABORTED (0x14) within the timeout

Exit status 0 if every case got a reply, 1 otherwise.
"""

import argparse
import json
import os
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peerpool_client import (ABORTED, CANCEL, DATA, ERROR, HEADER_SIZE, OPEN, STATUS,  # noqa: E402
                             pack_header)


def cases():
    """(name, frames, ids a reply may carry). Each request case has its own request id."""
    return [
        ("wrong_header_length", [pack_header(STATUS, 101)[:HEADER_SIZE - 1]], {0, 101}),
        ("version_2", [pack_header(STATUS, 102, version=2)], {0, 102}),
        ("unknown_type", [pack_header(0x7F, 103)], {0, 103}),
        ("open_invalid_json", [pack_header(OPEN, 104), b'{"remote": "oops'], {0, 104}),
        ("open_bad_remote",
         [pack_header(OPEN, 105), json.dumps({"remote": "zzz", "protocol": "Ping"}).encode()], {0, 105}),
        ("data_unknown_stream", [pack_header(DATA, 999), b"hello"], {999}),
        ("request_id_zero", [pack_header(STATUS, 0)], {0}),
        ("cancel_with_body", [pack_header(CANCEL, 108), b"unexpected"], {0, 108}),
        ("three_frames", [pack_header(STATUS, 109), b"one", b"two"], {0, 109}),
    ]


def reply(socket, ids, timeout):
    """(type, code) of the first ERROR or ABORTED carrying one of `ids`, or None after timeout."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        if not socket.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
            break
        frames = socket.recv_multipart(flags=zmq.NOBLOCK)
        header = frames[0]
        if len(header) != HEADER_SIZE or header[0] != 1:
            print(f"  (ignored a reply with a bad header: {header.hex()})", file=sys.stderr)
            continue
        msg_type, ident = header[1], int.from_bytes(header[4:12], "big")
        if msg_type not in (ERROR, ABORTED) or ident not in ids:
            print(f"  (ignored a reply: type {msg_type:#04x} id {ident})", file=sys.stderr)
            continue
        try:
            code = str(json.loads(frames[1])["code"]) if len(frames) == 2 else "-"
        except (ValueError, KeyError, TypeError):
            code = "-"
        return msg_type, code
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="the supervisor's frontend, e.g. ipc:///path/frontend.sock")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply (default: 5)")
    args = parser.parse_args()

    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.SNDTIMEO, int(args.timeout * 1000))
    socket.connect(args.endpoint)
    all_answered = True
    try:
        for name, frames, ids in cases():
            try:
                socket.send_multipart(frames)
            except zmq.Again:
                print(f"{name} timeout", flush=True)
                all_answered = False
                continue
            answer = reply(socket, ids, args.timeout)
            if answer is None:
                print(f"{name} timeout", flush=True)
                all_answered = False
            else:
                print(f"{name} {answer[0]:#04x} {answer[1]}", flush=True)
    finally:
        socket.close()
        context.term()
    return 0 if all_answered else 1


if __name__ == "__main__":
    sys.exit(main())
