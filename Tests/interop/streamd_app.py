"""clients/python/streamd_client.py against a running streamd (a real process on a real socket).

Usage: streamd_app.py SOCKET. Exercises hello, create, join, write, read, consume, status,
daemon_status, sync, close and remove, and the stable error codes of docs/IPC.md section 7.
Prints one line per check; exits 1 at the first failed check.
"""
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))

from streamd_client import MAX_CHUNK, StreamdError, connect  # noqa: E402

TIMEOUT = float(os.environ.get("INTEROP_TIMEOUT", "90"))


def check(condition, what):
    if not condition:
        print(f"FAIL: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def expect_error(code, what, call, *args, **kwargs):
    """Runs call and requires a StreamdError with `code`; returns it."""
    try:
        call(*args, **kwargs)
    except StreamdError as error:
        check(error.code == code, f"{what}: error {error.name}({error.code}), want code {code}")
        return error
    check(False, f"{what}: succeeded, want error code {code}")


def write_all(client, name, data):
    """Writes every byte at its offset, following wrongOffset and waiting on busy."""
    position = 0
    while position < len(data):
        try:
            _, position = client.write(name, position, data[position:position + MAX_CHUNK])
        except StreamdError as error:
            if error.name == "busy":
                time.sleep((error.retry_after_ms or 50) / 1000)
            elif error.name == "wrongOffset":
                position = error.expected_offset
            else:
                raise
    return position


def read_all(client, name, deadline):
    """Reads (and consumes) until the peer's end."""
    received = bytearray()
    while True:
        check_time(deadline)
        offset, chunk, end = client.read(name, len(received), wait=True)
        if offset != len(received):
            check(False, f"read returned offset {offset}, want {len(received)}")
        received += chunk
        if chunk:
            consumed = client.consume(name, len(received))
            if consumed != len(received):
                check(False, f"consume returned {consumed}, want {len(received)}")
        if end:
            return bytes(received)


def check_time(deadline):
    if time.monotonic() > deadline:
        print("FAIL: out of time", flush=True)
        sys.exit(1)


def main(socket_path):
    deadline = time.monotonic() + TIMEOUT
    # A request before hello, and a hello offering no common version.
    with connect(socket_path, hello=False, timeout=TIMEOUT) as raw:
        expect_error(4, "list before hello is helloRequired", raw.list)
        expect_error(3, "hello for version 99 is unsupportedVersion", raw.hello, min_version=99, max_version=99)
        reply = raw.hello()
        check(reply["version"] == 1, "a second hello with version 1 is accepted after the refusal")

    with connect(socket_path, timeout=TIMEOUT) as alice, connect(socket_path, timeout=TIMEOUT) as bob:
        hello = alice.hello_reply
        check(hello["version"] == 1 and len(hello["instance"]) == 16, "hello: version 1, 16-byte instance")
        check(hello["daemon"].startswith("streamd"), f"hello names the daemon ({hello['daemon']})")
        expect_error(6, "a second hello is invalidArgument", alice.hello)

        status = alice.daemon_status()
        check(status["kpclientd_connected"] is True, "daemon_status: kpclientd connected")

        info, address = alice.create("py-alice")
        check(info["name"] == "py-alice" and info["role"] == "listener", "create: a listener")
        check(address.startswith("kps1"), "create returns an address")
        expect_error(8, "create with a used name is nameInUse", alice.create, "py-alice")
        expect_error(7, "create with a bad name is invalidName", alice.create, "-bad name")
        expect_error(10, "join with a garbage address is invalidAddress", bob.join, "py-garbage", "kps1notanaddress")
        joined = bob.join("py-bob", address)
        check(joined["role"] == "dialer", "join: the dialer")
        expect_error(9, "status of a missing stream is noSuchStream", alice.status, "py-missing")
        expect_error(5, "an unknown op is unknownOperation", alice.request, "frobnicate")

        data = os.urandom(200_000)
        check(write_all(alice, "py-alice", data) == len(data), "write: every byte accepted")
        again, offset = alice.write("py-alice", 0, data[:10])
        check(again == 0 and offset == 10, "a repeated write is idempotent")
        error = expect_error(11, "a write past the end is wrongOffset", alice.write, "py-alice", len(data) + 5, b"x")
        check(error.expected_offset == len(data), "wrongOffset carries the expected offset")
        alice.sync("py-alice")
        status = alice.status("py-alice")
        check(status["bytes_written"] == len(data) and status["bytes_acked"] == len(data), "sync: every byte acknowledged")

        reply_bytes = b"reply from bob"
        write_all(bob, "py-bob", reply_bytes)
        bob.close("py-bob", wait=True)
        expect_error(13, "write after close is closed", bob.write, "py-bob", len(reply_bytes), b"more")

        alice.close("py-alice", wait=False)
        received = read_all(bob, "py-bob", deadline)
        check(hashlib.sha256(received).digest() == hashlib.sha256(data).digest(), f"bob read {len(received)} bytes, identical")
        status = bob.status("py-bob")
        check(status["bytes_consumed"] == len(data) and status["peer_closed"] is True, "status: consumed all, peer closed")
        back = read_all(alice, "py-alice", deadline)
        check(back == reply_bytes, "alice read bob's reply")

        names = [stream["name"] for stream in alice.list()]
        check("py-alice" in names and "py-bob" in names, "list has both streams")
        alice.remove("py-alice")
        bob.remove("py-bob")
        expect_error(9, "status after remove is noSuchStream", alice.status, "py-alice")
        names = [stream["name"] for stream in alice.list()]
        check("py-alice" not in names and "py-bob" not in names, "list no longer has them")
    print("streamd_app: all checks passed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
