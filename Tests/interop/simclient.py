"""Shared helpers for the kpclientd-sim interop scripts.

Each script is run as `python SCRIPT.py THINCLIENT_TOML` by the Swift tests in
Tests/KpclientdSimTests/PythonInteropTests.swift. A script exits 0 when every check
passed; any exception (or a check failing) exits non-zero with a traceback.
"""
import asyncio
import logging
import os
import sys

from katzenpost_thinclient import Config, ThinClient

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
# The thin client forces its own logger to DEBUG; keep the handler at INFO unless asked otherwise.
logging.root.handlers[0].setLevel(os.environ.get("INTEROP_LOG_LEVEL", "INFO"))


class Recorder:
    """Records what the client saw: status events, disconnects, session-token replies."""

    def __init__(self):
        self.statuses = []
        self.disconnects = []
        self.token_replies = []

    async def on_status(self, event):
        self.statuses.append(event)

    async def on_disconnected(self, event):
        self.disconnects.append(event)


async def connect(config_path: str, recorder: "Recorder | None" = None) -> "tuple[ThinClient, Recorder]":
    """Starts a thin client against the simulator and records its session-token replies."""
    recorder = recorder or Recorder()
    cfg = Config(config_path, on_connection_status=recorder.on_status, on_daemon_disconnected=recorder.on_disconnected)
    client = ThinClient(cfg)
    original = client._recv_until

    async def recording_recv_until(loop, key, limit=16):
        response = await original(loop, key, limit)
        if key == "session_token_reply":
            recorder.token_replies.append(response["session_token_reply"])
        return response

    client._recv_until = recording_recv_until
    await client.start(asyncio.get_running_loop())
    return client, recorder


def check(condition, message):
    if not condition:
        raise AssertionError(message)


async def wait_until(predicate, timeout: float, what: str):
    """Waits (polling the client's own state) until predicate() holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def write_box(client, write_cap, index, plaintext, **flags):
    enc = await client.encrypt_write(plaintext, write_cap, index)
    await client.start_resending_encrypted_message(
        None, write_cap, None, 0, enc.envelope_descriptor, enc.message_ciphertext, enc.envelope_hash, **flags
    )
    return enc


async def read_box(client, read_cap, index, **flags):
    enc = await client.encrypt_read(read_cap, index)
    result = await client.start_resending_encrypted_message(
        read_cap, None, index, 0, enc.envelope_descriptor, enc.message_ciphertext, enc.envelope_hash, **flags
    )
    return result.plaintext


def run(main):
    """Runs main(config_path) with an overall timeout, exiting non-zero on failure."""
    config_path = sys.argv[1]
    timeout = float(os.environ.get("INTEROP_TIMEOUT", "90"))
    asyncio.run(asyncio.wait_for(main(config_path), timeout))
    print("OK")
