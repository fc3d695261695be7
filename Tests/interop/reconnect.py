"""Session resume: the simulator drops the connection while a read is in flight.

The Swift test waits until the simulator reports one blocked read, then drops every client
connection. The client reconnects with the same session token, gets resumed=true, replays the
read (same query_id and envelope_hash), and the read completes once the box is written.
"""
import asyncio
import os

from simclient import check, connect, run, wait_until, write_box


async def main(config_path):
    reader, rrec = await connect(config_path)
    writer, wrec = await connect(config_path)
    try:
        kp = await writer.new_keypair(os.urandom(32))
        enc = await reader.encrypt_read(kp.read_cap, kp.first_message_index)
        read = asyncio.create_task(reader.start_resending_encrypted_message(
            kp.read_cap, None, kp.first_message_index, 0, enc.envelope_descriptor, enc.message_ciphertext, enc.envelope_hash))
        print("READ_IN_FLIGHT", flush=True)

        # The Swift side drops both connections; both clients reconnect on their own.
        await wait_until(lambda: len(rrec.token_replies) >= 2 and len(wrec.token_replies) >= 2, 40, "both clients to reconnect")
        check(rrec.disconnects and rrec.disconnects[0]["is_graceful"] is False, "drop is not graceful")
        check(rrec.token_replies[1]["resumed"] is True, "reader session resumed")
        check(rrec.token_replies[1]["app_id"] == rrec.token_replies[0]["app_id"], "same app id after resume")
        check(wrec.token_replies[1]["resumed"] is True, "writer session resumed")
        check(not read.done(), "read still in flight after reconnect")

        message = b"written after the reconnect"
        await write_box(writer, kp.write_cap, kp.first_message_index, message)
        result = await asyncio.wait_for(read, 20)
        check(result.plaintext == message, f"replayed read returned {result.plaintext!r}")
    finally:
        reader.stop()
        writer.stop()


run(main)
