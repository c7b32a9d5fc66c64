"""A small client for the peerpool supervisor, wire protocol version 1.

The protocol is described in docs/wire-protocol.md. This module needs only pyzmq.

    client = Client("ipc:///run/user/1000/peerpool/frontend.sock")
    stream = client.open_stream(remote_id52, {"Generic": "echo"}, address="127.0.0.1:4433")
    stream.send(b"hello\\n")
    stream.finish()
    while (chunk := stream.recv()) is not None:
        print(chunk)
    client.close()

One DEALER socket carries every request and stream of a client. Whatever arrives while the
client waits for something else (another stream's DATA, another request's answer) is kept for
whoever asks for it later. Every wait has a deadline, so nothing here blocks forever: a wait that
runs out raises PeerpoolError("timeout", ...).

A Client is not thread-safe (neither is a ZeroMQ socket): use it from one thread.
"""

import collections
import itertools
import json
import struct
import time

import zmq

VERSION = 1
HEADER = struct.Struct(">BBHQ")  # version, type, reserved (0), id: 12 bytes
HEADER_SIZE = HEADER.size

# Client -> supervisor.
OPEN = 0x01
CANCEL = 0x02
STATUS = 0x03
# Both directions.
DATA = 0x10
FINISH = 0x11
RESET = 0x12
CREDIT = 0x13
# Supervisor -> client.
ABORTED = 0x14
OPENED = 0x81
ERROR = 0x82
STATUS_REPLY = 0x83

MAX_DATA_BODY = 1048576  # the protocol's limit for one DATA body
SEND_CHUNK = 65536  # what this client puts in one DATA frame
MAX_WINDOW = 16777216

OPENED_BODY = struct.Struct(">QII")  # stream id, send window, reserved
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")

# What the supervisor may send, and the body each type must have:
# None = no body, int = exactly that many bytes, "json" = a JSON object, "data" = 1 ... 1 MiB.
INCOMING_BODIES = {
    OPENED: OPENED_BODY.size,
    ERROR: "json",
    STATUS_REPLY: "json",
    DATA: "data",
    FINISH: None,
    CREDIT: U32.size,
    ABORTED: "json",
}


class PeerpoolError(Exception):
    """An ERROR or ABORTED from the supervisor, or a failure on the client side.

    `code` is stable, for programs (see the error table in docs/wire-protocol.md, plus the
    client-side "timeout", "closed" and "supervisor_lost"); `message` is for people.
    """

    def __init__(self, code, message=""):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Framing: pure functions, no sockets.


def pack_header(msg_type, ident, version=VERSION):
    """The 12-byte header: version, type, two reserved zero bytes, a big-endian 64-bit id."""
    return HEADER.pack(version, msg_type, 0, ident)


def unpack_header(frame):
    """(type, id) from a header frame; PeerpoolError if it is not a version-1 header."""
    frame = bytes(frame)
    if len(frame) != HEADER_SIZE:
        raise PeerpoolError("malformed_frame", f"header of {len(frame)} bytes, expected {HEADER_SIZE}")
    version, msg_type, reserved, ident = HEADER.unpack(frame)
    if version != VERSION:
        raise PeerpoolError("unsupported_version", f"header version {version}, this client speaks {VERSION}")
    if reserved != 0:
        raise PeerpoolError("malformed_frame", f"reserved header bytes are {reserved:#06x}, not 0")
    return msg_type, ident


def encode_message(msg_type, ident, body=None):
    """The frames of one message: [header] or [header, body]."""
    header = pack_header(msg_type, ident)
    return [header] if body is None else [header, bytes(body)]


def decode_message(frames):
    """(type, id, body) from the frames the supervisor sent, body checked against the type.

    body is None, bytes (DATA, OPENED, CREDIT) or a dict (ERROR, STATUS_REPLY, ABORTED).
    Raises PeerpoolError for anything that is not a well-formed version-1 message.
    """
    if len(frames) not in (1, 2):
        raise PeerpoolError("malformed_frame", f"message of {len(frames)} frames, expected 1 or 2")
    msg_type, ident = unpack_header(frames[0])
    body = bytes(frames[1]) if len(frames) == 2 else None
    if msg_type not in INCOMING_BODIES:
        raise PeerpoolError("unknown_type", f"message type {msg_type:#04x} from the supervisor")
    shape = INCOMING_BODIES[msg_type]
    name = f"message type {msg_type:#04x}"
    if shape is None:
        if body is not None:
            raise PeerpoolError("malformed_frame", f"{name} has a body, it should have none")
        return msg_type, ident, None
    if body is None:
        raise PeerpoolError("malformed_frame", f"{name} has no body")
    if shape == "data":
        if not 1 <= len(body) <= MAX_DATA_BODY:
            raise PeerpoolError("malformed_frame", f"DATA body of {len(body)} bytes")
        return msg_type, ident, body
    if shape == "json":
        try:
            obj = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise PeerpoolError("malformed_frame", f"{name}: body is not JSON ({e})") from None
        if not isinstance(obj, dict):
            raise PeerpoolError("malformed_frame", f"{name}: body is not a JSON object")
        return msg_type, ident, obj
    if len(body) != shape:
        raise PeerpoolError("malformed_frame", f"{name}: body of {len(body)} bytes, expected {shape}")
    return msg_type, ident, body


def open_body(remote, protocol, address=None, extra=None, self_id=None, timeout_ms=10000, window=262144):
    """OPEN's JSON body, as bytes. Optional fields that are None are left out."""
    fields = {"remote": remote, "protocol": protocol, "timeout_ms": timeout_ms, "window": window}
    if address is not None:
        fields["address"] = address
    if self_id is not None:
        fields["self"] = self_id
    if extra is not None:
        fields["extra"] = extra
    return json.dumps(fields, separators=(",", ":")).encode("utf-8")


def error_from(body):
    """PeerpoolError from an ERROR or ABORTED body (a dict)."""
    return PeerpoolError(str(body.get("code", "unknown")), str(body.get("message", "")))


# ---------------------------------------------------------------------------------------------
# Client and streams.


class _Request:
    def __init__(self, kind, window=0):
        self.kind = kind  # OPEN or STATUS
        self.window = window  # OPEN's window: the stream starts with it
        self.answer = None  # (type, body) once answered
        self.abandoned = False  # timed out here: the answer, when it comes, is thrown away
        self.stream = None  # OPEN's _StreamState, once OPENED arrived


class _StreamState:
    """What the client knows of one stream. Filled by Client._dispatch, read by Stream."""

    def __init__(self, stream_id, send_window, recv_window):
        self.id = stream_id
        self.send_credit = send_window  # bytes we may still send
        self.window = recv_window  # OPEN's window
        self.peer_credit = recv_window  # bytes the supervisor may still send us
        self.inbox = collections.deque()  # DATA bodies; at most `window` bytes in all
        self.finished_by_peer = False  # FINISH arrived (after every DATA in inbox)
        self.finished_by_us = False
        self.error = None  # PeerpoolError from ABORTED, or our own RESET


class Client:
    """One connection to the supervisor's frontend (a DEALER socket).

    `timeout` (seconds) is the default for every wait that has no timeout of its own.
    """

    def __init__(self, endpoint, timeout=10.0, context=None):
        self.endpoint = endpoint
        self.timeout = timeout
        self._own_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 1000)  # close() waits at most 1 s for unsent frames
        # ZeroMQ hides disconnects (a DEALER just queues and reconnects): a monitor on the
        # socket reports the supervisor going away within milliseconds, so waits fail with
        # supervisor_lost at once instead of running into their timeouts.
        self._monitor = self._socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self._lost = None  # PeerpoolError("supervisor_lost") once the connection closed
        self._socket.connect(endpoint)
        self._poller = zmq.Poller()
        self._poller.register(self._socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)
        self._request_ids = itertools.count(1)  # never reused, never 0
        self._requests = {}  # request id -> _Request, until answered
        self._streams = {}  # stream id -> _StreamState, until the stream is over
        self.discarded = 0  # messages for ids this client no longer knows (e.g. CREDIT after the end)

    # -- requests ----------------------------------------------------------------------------

    def open_stream(self, remote, protocol, address=None, extra=None, self_id=None,
                    timeout_ms=10000, window=262144):
        """OPEN a stream to `remote` (an ID52) speaking `protocol` (e.g. "Ping" or {"Generic": ...}).

        Returns a Stream once the peer acknowledged it; raises PeerpoolError with the
        supervisor's code on ERROR. The supervisor answers within timeout_ms; this side waits
        two seconds more, then sends CANCEL and raises PeerpoolError("timeout").
        """
        body = open_body(remote, protocol, address, extra, self_id, timeout_ms, window)
        request = _Request(OPEN, window)
        rid = self._new_request(request)
        deadline = time.monotonic() + timeout_ms / 1000 + 2.0
        self._send(encode_message(OPEN, rid, body), deadline)
        msg_type, answer = self._wait_answer(rid, deadline, f"OPEN to {remote}")
        if msg_type == ERROR:
            raise error_from(answer)
        return Stream(self, request.stream)

    def status(self, timeout=None):
        """The supervisor's STATUS_REPLY, as a dict."""
        rid = self._new_request(_Request(STATUS))
        deadline = self._deadline(timeout)
        self._send(encode_message(STATUS, rid), deadline)
        msg_type, answer = self._wait_answer(rid, deadline, "STATUS")
        if msg_type == ERROR:
            raise error_from(answer)
        return answer

    def close(self):
        """Close the socket. Streams still open are left to the supervisor to clean up."""
        if self._socket is None:
            return
        self._poller.unregister(self._monitor)
        self._socket.disable_monitor()
        self._monitor.close()
        self._socket.close()
        self._socket = None
        if self._own_context:
            self._context.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _new_request(self, request):
        rid = next(self._request_ids)
        self._requests[rid] = request
        return rid

    def _wait_answer(self, rid, deadline, what):
        request = self._requests[rid]
        try:
            self._wait(lambda: request.answer is not None, deadline, what)
        except PeerpoolError as e:
            if e.code == "timeout" and self._socket is not None:
                # Keep the id reserved until its answer arrives, so it is never reused while
                # the supervisor still knows it; tell the supervisor to drop it.
                request.abandoned = True
                self._try_send(encode_message(CANCEL, rid))
            else:
                self._requests.pop(rid, None)
            raise
        del self._requests[rid]
        return request.answer

    def _send(self, frames, deadline):
        """Send one message, waiting at most until `deadline` for room in the socket's queue."""
        self._check_open()
        while True:
            try:
                self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerpoolError("timeout", f"could not send to {self.endpoint}: queue full")
            self._socket.poll(max(1, int(remaining * 1000)), zmq.POLLOUT)

    def _try_send(self, frames):
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # best effort (CANCEL after a timeout)

    def _wait(self, done, deadline, what):
        """Take in messages until done() is true; PeerpoolError("timeout") at the deadline."""
        while not done():
            self._check_open()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PeerpoolError("timeout", f"no answer to {what} from {self.endpoint} in time")
            events = dict(self._poller.poll(max(1, int(remaining * 1000))))
            if self._socket in events:
                self._dispatch(self._socket.recv_multipart(flags=zmq.NOBLOCK))
            if self._monitor in events:
                self._read_monitor()

    def _read_monitor(self):
        """The supervisor's connection closed: everything waiting fails with supervisor_lost."""
        while True:
            try:
                frames = self._monitor.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            event = struct.unpack("=hi", frames[0][:6])[0]
            if event == zmq.EVENT_DISCONNECTED and self._lost is None:
                self._lost = PeerpoolError(
                    "supervisor_lost", f"the connection to the supervisor at {self.endpoint} closed")
                for state in self._streams.values():
                    state.error = self._lost
                self._streams.clear()

    def _check_open(self):
        if self._socket is None:
            raise PeerpoolError("closed", "the client is closed")
        if self._lost is not None:
            raise self._lost

    def _dispatch(self, frames):
        """File one incoming message where whoever waits for it will find it."""
        msg_type, ident, body = decode_message(frames)

        if msg_type in (OPENED, ERROR, STATUS_REPLY):
            if msg_type == ERROR and ident == 0:
                # The supervisor could not read something we sent: a bug on this side.
                raise error_from(body)
            request = self._requests.get(ident)
            if request is None:
                self.discarded += 1
                return
            if msg_type == OPENED:
                stream_id, send_window, _ = OPENED_BODY.unpack(body)
                if request.abandoned:
                    # We gave up on it; the supervisor opened it anyway: end it.
                    self._try_send(encode_message(RESET, stream_id, U64.pack(0)))
                else:
                    # Registered now, so DATA that follows the OPENED is kept even if nobody
                    # reads the answer yet.
                    request.stream = _StreamState(stream_id, send_window, request.window)
                    self._streams[stream_id] = request.stream
            if request.abandoned:
                del self._requests[ident]
            else:
                request.answer = (msg_type, body)
            return

        state = self._streams.get(ident)
        if state is None:
            self.discarded += 1  # e.g. CREDIT that crossed the stream's end
            return
        if msg_type == DATA:
            state.peer_credit -= len(body)
            if state.peer_credit < 0:
                raise PeerpoolError("flow_control_violation",
                                    f"the supervisor sent beyond the window on stream {ident}")
            state.inbox.append(body)
        elif msg_type == FINISH:
            state.finished_by_peer = True
            self._forget_if_over(state)
        elif msg_type == CREDIT:
            state.send_credit += U32.unpack(body)[0]
        elif msg_type == ABORTED:
            state.error = error_from(body)
            self._forget_if_over(state)
        else:
            raise PeerpoolError("unknown_type", f"message type {msg_type:#04x} for stream {ident}")

    def _forget_if_over(self, state):
        if state.error is not None or (state.finished_by_peer and state.finished_by_us):
            self._streams.pop(state.id, None)


class Stream:
    """One bidirectional stream, from Client.open_stream.

    `timeout` (seconds) is the default for each send/recv wait; None means the client's.
    """

    def __init__(self, client, state):
        self._client = client
        self._state = state
        self._buffer = bytearray()  # bytes read from the inbox by read_line, not yet returned
        self._unreturned = 0  # bytes the application consumed that we did not CREDIT yet
        # Return credit in batches: a quarter of the window (at most 64 KiB). Any threshold
        # <= window keeps the peer moving: the supervisor is stalled only when it holds no
        # credit, and then we have consumed at least `window` bytes, so credit went out.
        self._credit_batch = max(1, min(state.window // 4, SEND_CHUNK))
        self.timeout = None

    @property
    def id(self):
        return self._state.id

    def send(self, data, timeout=None):
        """Send all of `data`, in DATA frames of at most 64 KiB, waiting for CREDIT when the
        send window is spent. `timeout` bounds each wait for credit."""
        state = self._state
        view = memoryview(bytes(data))
        while view:
            self._raise_if_over()
            if state.finished_by_us:
                raise PeerpoolError("closed", f"stream {state.id}: send after finish")
            if state.send_credit <= 0:
                self._client._wait(lambda: state.send_credit > 0 or state.error is not None,
                                   self._deadline(timeout), f"CREDIT on stream {state.id}")
                continue
            n = min(len(view), state.send_credit, SEND_CHUNK)
            self._client._send(encode_message(DATA, state.id, view[:n]), self._deadline(timeout))
            state.send_credit -= n
            view = view[n:]

    def finish(self, timeout=None):
        """End our side: the peer reads to its end. We can still recv."""
        state = self._state
        self._raise_if_over()
        if state.finished_by_us:
            return
        self._client._send(encode_message(FINISH, state.id), self._deadline(timeout))
        state.finished_by_us = True
        self._client._forget_if_over(state)

    def reset(self, code=0):
        """Abandon the stream both ways, with a QUIC application error code."""
        state = self._state
        if state.error is not None or (state.finished_by_peer and state.finished_by_us):
            return  # already over
        self._client._send(encode_message(RESET, state.id, U64.pack(code)), self._deadline(None))
        state.error = PeerpoolError("closed", f"stream {state.id} was reset here (code {code})")
        self._client._forget_if_over(state)

    def recv(self, timeout=None):
        """The next bytes from the peer; None once the peer finished and everything was read.

        Raises PeerpoolError with the supervisor's code if the stream was ABORTED, or
        "timeout" if nothing arrived in time.
        """
        if self._buffer:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._consumed(len(data))
            return data
        data = self._next_chunk(timeout)
        if data is not None:
            self._consumed(len(data))
        return data

    def read_line(self, timeout=None, limit=MAX_DATA_BODY):
        """One line, with its b"\\n"; at the end, what is left without one; None after that.

        Raises PeerpoolError("line_too_long") past `limit` bytes without a newline.
        """
        deadline = self._deadline(timeout)
        while b"\n" not in self._buffer:
            if len(self._buffer) > limit:
                raise PeerpoolError("line_too_long", f"no newline in {limit} bytes on stream {self.id}")
            chunk = self._next_chunk(max(0.0, deadline - time.monotonic()))
            if chunk is None:  # the end: what is left, if anything
                if not self._buffer:
                    return None
                line = bytes(self._buffer)
                self._buffer.clear()
                self._consumed(len(line))
                return line
            self._buffer += chunk
        end = self._buffer.index(b"\n") + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        self._consumed(len(line))
        return line

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Leaving the block with the stream still open (e.g. on an exception) resets it.
        state = self._state
        if state.error is None and not (state.finished_by_peer and state.finished_by_us):
            try:
                self.reset(0)
            except PeerpoolError:
                pass

    # -- internals ---------------------------------------------------------------------------

    def _deadline(self, timeout):
        if timeout is None:
            timeout = self.timeout if self.timeout is not None else self._client.timeout
        return time.monotonic() + timeout

    def _next_chunk(self, timeout):
        """One DATA body from the inbox (without crediting it), or None at the end."""
        state = self._state
        self._client._wait(lambda: state.inbox or state.finished_by_peer or state.error is not None,
                           self._deadline(timeout), f"DATA on stream {state.id}")
        if state.inbox:
            return state.inbox.popleft()
        if state.error is not None:
            raise state.error
        return None

    def _consumed(self, n):
        """The application took n bytes: return them to the supervisor as CREDIT, in batches."""
        state = self._state
        self._unreturned += n
        if self._unreturned >= self._credit_batch and not state.finished_by_peer and state.error is None:
            self._client._send(encode_message(CREDIT, state.id, U32.pack(self._unreturned)),
                               self._deadline(None))
            state.peer_credit += self._unreturned
            self._unreturned = 0

    def _raise_if_over(self):
        if self._state.error is not None:
            raise self._state.error
