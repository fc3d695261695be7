"""Unit tests of streamd_client.py without a daemon: the frames it encodes must equal the
examples of docs/IPC.md byte for byte, it must decode the documented server frames, and it
must run a request/reply exchange over a socket pair against a scripted daemon.

Run: .venv/bin/python clients/python/test_streamd_client.py   (from anywhere; exits non-zero on failure)
"""

import os
import pathlib
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import streamd_client  # noqa: E402
from streamd_client import StreamdClient, StreamdError, encode_request  # noqa: E402

DOCUMENT = pathlib.Path(__file__).resolve().parents[2] / "docs" / "IPC.md"


def documented_frames():
    """The example frames of docs/IPC.md by name: the hex lines of each `ipc-example` block."""
    frames = {}
    lines = DOCUMENT.read_text(encoding="utf-8").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("<!-- ipc-example: ") and line.endswith(" -->"):
            name = line[len("<!-- ipc-example: "):-len(" -->")]
            body = []
            index += 2  # skip the opening fence
            while lines[index] != "```":
                body.append(lines[index])
                index += 1
            # The first line is diagnostic notation; the rest is the frame in hex.
            frames[name] = bytes.fromhex(" ".join(body[1:]))
        index += 1
    return frames


FRAMES = documented_frames()


class EncodingTests(unittest.TestCase):
    def test_hello_frame_matches_the_document(self):
        frame = encode_request(1, "hello", min_version=1, max_version=1, client="example/1")
        self.assertEqual(frame, FRAMES["hello-request"])

    def test_other_requests_match_the_document(self):
        self.assertEqual(encode_request(2, "create", name="chat", mode="stream"), FRAMES["create-request"])
        self.assertEqual(encode_request(3, "write", name="chat", offset=0, data=b"hello"), FRAMES["write-request"])
        self.assertEqual(encode_request(5, "read", name="chat", offset=0, max_length=65536, wait=True),
                         FRAMES["read-request"])

    def test_documented_server_frames_decode(self):
        hello = streamd_client.decode_payload(FRAMES["hello-reply"][4:])
        self.assertEqual(hello["version"], 1)
        self.assertEqual(hello["instance"], bytes(range(16)))
        error = StreamdError.from_map(streamd_client.decode_payload(FRAMES["wrong-offset-reply"][4:])["error"])
        self.assertEqual((error.code, error.name, error.expected_offset), (11, "wrongOffset", 5))
        event = streamd_client.decode_payload(FRAMES["data-available-event"][4:])
        self.assertEqual(event, {"event": "data_available", "name": "chat", "offset": 2})

    def test_every_example_is_a_framed_map(self):
        self.assertEqual(len(FRAMES), 11)
        for name, frame in FRAMES.items():
            self.assertEqual(int.from_bytes(frame[:4], "big"), len(frame) - 4, name)
            self.assertIsInstance(streamd_client.decode_payload(frame[4:]), dict, name)


class ExchangeTests(unittest.TestCase):
    """The client against a scripted daemon on a socket pair, replaying the documented frames."""

    def run_daemon(self, script):
        client_end, daemon_end = socket.socketpair()
        self.addCleanup(client_end.close)
        self.addCleanup(daemon_end.close)
        received = []

        def daemon():
            reader = StreamdClient(daemon_end)
            for reply in script:
                received.append(reader.receive())
                daemon_end.sendall(reply)

        thread = threading.Thread(target=daemon, daemon=True)
        thread.start()
        return StreamdClient(client_end), thread, received

    def test_hello_write_and_errors(self):
        client, thread, received = self.run_daemon([
            FRAMES["hello-reply"],
            FRAMES["data-available-event"] + FRAMES["written-reply"].replace(b"\x62id\x03", b"\x62id\x02", 1),
            FRAMES["wrong-offset-reply"].replace(b"\x62id\x04", b"\x62id\x03", 1),
            FRAMES["goodbye"],
        ])
        client.hello(client="example/1")
        self.assertEqual(client.hello_reply["features"], ["subscribe"])
        self.assertEqual(client.write("chat", 0, b"hello"), (5, 5))
        self.assertEqual(client.next_event()["offset"], 2)
        with self.assertRaises(StreamdError) as caught:
            client.write("chat", 9, b"x")
        self.assertEqual(caught.exception.expected_offset, 5)
        with self.assertRaises(StreamdError) as caught:
            client.list()
        self.assertTrue(caught.exception.goodbye)
        self.assertEqual(caught.exception.name, "malformed")
        thread.join(5)
        self.assertEqual(received[0], {"id": 1, "op": "hello", "min_version": 1, "max_version": 1, "client": "example/1"})
        self.assertEqual(received[1], {"id": 2, "op": "write", "name": "chat", "offset": 0, "data": b"hello"})
        self.assertEqual(received[3], {"id": 4, "op": "list"})

    def test_oversize_frame_is_refused_before_reading_it(self):
        client_end, daemon_end = socket.socketpair()
        self.addCleanup(client_end.close)
        self.addCleanup(daemon_end.close)
        daemon_end.sendall(b"\x00\x10\x00\x01")
        with self.assertRaises(StreamdError) as caught:
            StreamdClient(client_end).receive()
        self.assertEqual(caught.exception.code, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
