"""A small synchronous client for the streamd app protocol (docs/IPC.md), version 1.

Frames are a 4-byte big-endian length and one CBOR map, encoded with cbor2. Replies are
matched by request id; events that arrive meanwhile are queued (see `next_event`).

    from streamd_client import connect
    with connect("/run/user/1000/streamd/streamd.sock") as daemon:
        info, address = daemon.create("chat")
        accepted, offset = daemon.write("chat", 0, b"hello")
"""

import collections
import os
import socket
import struct

import cbor2

PROTOCOL_VERSION = 1
MAX_FRAME_SIZE = 1 << 20
MAX_CHUNK = 256 << 10

# Stable error codes (docs/IPC.md, section 7).
ERROR_NAMES = {
    1: "malformed", 2: "frameTooLarge", 3: "unsupportedVersion", 4: "helloRequired",
    5: "unknownOperation", 6: "invalidArgument", 7: "invalidName", 8: "nameInUse",
    9: "noSuchStream", 10: "invalidAddress", 11: "wrongOffset", 12: "busy", 13: "closed",
    14: "readOnly", 15: "writeOnly", 16: "streamFailed", 17: "damaged", 18: "tooManyRequests",
    19: "shuttingDown", 20: "permissionDenied", 21: "internal", 22: "kpclientdUnavailable",
}


class StreamdError(Exception):
    """An error reply (or goodbye) from the daemon, or a protocol violation seen by the client."""

    def __init__(self, code, name, message, expected_offset=None, retry_after_ms=None, goodbye=False):
        super().__init__(f"{name}({code}): {message}")
        self.code = code
        self.name = name
        self.message = message
        self.expected_offset = expected_offset
        self.retry_after_ms = retry_after_ms
        self.goodbye = goodbye

    @classmethod
    def from_map(cls, error, goodbye=False):
        """Builds the exception from a wire error map."""
        if not isinstance(error, dict) or not isinstance(error.get("code"), int):
            return cls.protocol("error map without a numeric code")
        code = error["code"]
        return cls(code, ERROR_NAMES.get(code, f"unknown{code}"), str(error.get("message", "")),
                   error.get("expected_offset"), error.get("retry_after_ms"), goodbye)

    @classmethod
    def protocol(cls, message):
        """A malformed message from the daemon."""
        return cls(1, "malformed", message)


def encode_frame(message):
    """Frames one message (a dict): 4-byte big-endian length, then its CBOR encoding."""
    payload = cbor2.dumps(message)
    if len(payload) > MAX_FRAME_SIZE:
        raise ValueError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_SIZE}")
    return struct.pack(">I", len(payload)) + payload


def encode_request(request_id, op, **fields):
    """Frames a request: keys `id`, `op`, then `fields` in order; `None` fields are left out."""
    message = {"id": request_id, "op": op}
    message.update((key, value) for key, value in fields.items() if value is not None)
    return encode_frame(message)


def decode_payload(payload):
    """Decodes one frame payload into a dict, or raises StreamdError (malformed)."""
    try:
        message = cbor2.loads(payload)
    except Exception as error:  # cbor2 raises several types
        raise StreamdError.protocol(f"payload is not CBOR: {type(error).__name__}") from None
    if not isinstance(message, dict):
        raise StreamdError.protocol("payload is not a CBOR map")
    return message


class StreamdClient:
    """One connection to the daemon. Not thread-safe: one request at a time."""

    def __init__(self, sock):
        self.sock = sock
        self.next_id = 1
        self.events = collections.deque()
        self.hello_reply = None
        self._buffer = bytearray()

    # -- plumbing -------------------------------------------------------------------------

    def close_connection(self):
        """Closes the socket."""
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close_connection()

    def _receive_exactly(self, count):
        while len(self._buffer) < count:
            chunk = self.sock.recv(max(65536, count - len(self._buffer)))
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            self._buffer += chunk
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data

    def receive(self):
        """Reads one message (a dict) from the daemon; a goodbye raises StreamdError."""
        (length,) = struct.unpack(">I", self._receive_exactly(4))
        if length > MAX_FRAME_SIZE:
            raise StreamdError(2, "frameTooLarge", f"frame of {length} bytes from the daemon")
        message = decode_payload(self._receive_exactly(length))
        if "event" not in message and "goodbye" in message:
            raise StreamdError.from_map(message["goodbye"], goodbye=True)
        return message

    def request(self, op, **fields):
        """Sends one request and returns its reply's fields (a dict); raises StreamdError."""
        request_id = self.next_id
        self.next_id += 1
        self.sock.sendall(encode_request(request_id, op, **fields))
        while True:
            message = self.receive()
            if "event" in message:
                self.events.append(message)
                continue
            if message.get("id") != request_id:
                raise StreamdError.protocol(f"reply for id {message.get('id')!r}, expected {request_id}")
            if "error" in message:
                raise StreamdError.from_map(message["error"])
            return message

    def next_event(self):
        """Returns the next event (a dict with `event`), waiting for one if none is queued."""
        while not self.events:
            message = self.receive()
            if "event" in message:
                return message
            raise StreamdError.protocol("a reply with no request in flight")
        return self.events.popleft()

    # -- operations (docs/IPC.md, section 5) ----------------------------------------------

    def hello(self, min_version=PROTOCOL_VERSION, max_version=PROTOCOL_VERSION, client="streamd_client.py"):
        """Negotiates the version; returns the reply (version, daemon, instance, features)."""
        self.hello_reply = self.request("hello", min_version=min_version, max_version=max_version, client=client)
        return self.hello_reply

    def create(self, name, mode="stream"):
        """Creates a listener (`stream`) or multicast writer (`multicast`); returns (info, address)."""
        reply = self.request("create", name=name, mode=mode)
        return reply["stream"], reply["address"]

    def join(self, name, address):
        """Joins a stream by (full or read-only) address; returns its stream description."""
        return self.request("join", name=name, address=address)["stream"]

    def list(self):
        """Returns every stream description."""
        return self.request("list")["streams"]

    def status(self, name):
        """Returns one stream description."""
        return self.request("status", name=name)["stream"]

    def address(self, name, read_only=False):
        """Returns the stream's address (a secret), or its read-only multicast address."""
        return self.request("address", name=name, read_only=read_only)["address"]

    def close(self, name, wait=False):
        """Half-closes the app's direction; with wait, returns once the peer acknowledged the end."""
        self.request("close", name=name, wait=wait)

    def remove(self, name):
        """Deletes the stream and its state."""
        self.request("remove", name=name)

    def write(self, name, offset, data):
        """Writes data starting at stream offset `offset`; returns (accepted, offset after them)."""
        reply = self.request("write", name=name, offset=offset, data=bytes(data))
        return reply["accepted"], reply["offset"]

    def read(self, name, offset, max_length=MAX_CHUNK, wait=False):
        """Reads received bytes from `offset` without consuming them; returns (offset, data, end)."""
        reply = self.request("read", name=name, offset=offset, max_length=max_length, wait=wait)
        return reply["offset"], reply["data"], reply["end"]

    def consume(self, name, offset):
        """Marks every byte before `offset` processed; returns the consumed offset (durable)."""
        return self.request("consume", name=name, offset=offset)["offset"]

    def sync(self, name):
        """Returns once the peer acknowledged every byte written so far."""
        self.request("sync", name=name)

    def subscribe(self, names=None):
        """Subscribes to events of `names` (None: all streams); read them with next_event()."""
        self.request("subscribe", names=None if names is None else list(names))

    def daemon_status(self):
        """Returns the daemon description."""
        return self.request("daemon_status")["status"]


def connect(path, hello=True, timeout=None):
    """Connects to the daemon's Unix socket at `path` and, unless hello=False, says hello."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    client = StreamdClient(sock)
    if hello:
        try:
            client.hello()
        except BaseException:
            client.close_connection()
            raise
    return client
