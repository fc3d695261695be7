"""Legacy echo send_message, and cancelling an ARQ read and a copy command."""
import asyncio
import hashlib
import os

from katzenpost_thinclient import StartResendingCancelledError

from simclient import check, connect, run


async def main(config_path):
    client, _ = await connect(config_path)
    sent = []
    replies = []

    async def on_sent(event):
        sent.append(event)

    async def on_reply(event):
        replies.append(event)

    client.config.on_message_sent = on_sent
    client.config.on_message_reply = on_reply
    try:
        node, queue = client.get_service("echo").to_destination()
        payload = b"echo me " + os.urandom(8)
        reply = await client.blocking_send_message(payload, node, queue, timeout_seconds=20)
        check(reply[:len(payload)] == payload, "echo payload")
        check(len(reply) == client.geometry.UserForwardPayloadLength, "echo reply padded to the forward payload length")
        check(sent and len(sent[-1]["surbid"]) == 16 and isinstance(sent[-1]["reply_eta"], int), "message_sent_event")
        check("err" not in sent[-1], "err omitted when empty")
        await client.send_message_without_reply(b"fire and forget", node, queue)

        # Cancel a read that is blocked on an empty box: the read fails with EC 24 first.
        kp = await client.new_keypair(os.urandom(32))
        enc = await client.encrypt_read(kp.read_cap, kp.first_message_index)
        read = asyncio.create_task(client.start_resending_encrypted_message(
            kp.read_cap, None, kp.first_message_index, 0, enc.envelope_descriptor, enc.message_ciphertext, enc.envelope_hash))
        await asyncio.sleep(0.3)
        check(not read.done(), "read is blocked")
        await client.cancel_resending_encrypted_message(enc.envelope_hash)
        try:
            await asyncio.wait_for(read, 10)
            raise AssertionError("cancelled read succeeded")
        except StartResendingCancelledError:
            pass
        await client.cancel_resending_encrypted_message(os.urandom(32))  # unknown hash: EC 0

        # Cancel a copy command waiting for its (never written) temporary stream.
        temp = await client.new_keypair(os.urandom(32))
        copy = asyncio.create_task(client.start_resending_copy_command(temp.write_cap))
        await asyncio.sleep(0.3)
        check(not copy.done(), "copy waits for its stream")
        await client.cancel_resending_copy_command(hashlib.blake2b(temp.write_cap, digest_size=32).digest())
        try:
            await asyncio.wait_for(copy, 10)
            raise AssertionError("cancelled copy succeeded")
        except StartResendingCancelledError:
            pass
    finally:
        client.stop()


run(main)
