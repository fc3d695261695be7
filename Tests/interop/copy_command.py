"""Copy commands: build envelopes, write them to a temporary stream, copy, read the destination."""
import hashlib
import os

from katzenpost_thinclient import CopyCommandFailedError

from simclient import check, connect, read_box, run, write_box


async def write_elements(client, temp, elements):
    index = temp.first_message_index
    for element in elements:
        check(len(element) <= 1549, f"element of {len(element)} bytes fits a box")
        await write_box(client, temp.write_cap, index, element)
        index = await client.next_message_box_index(index)


async def main(config_path):
    client, _ = await connect(config_path)
    reader, _ = await connect(config_path)
    try:
        dest = await client.new_keypair(os.urandom(32))
        payload = os.urandom(4000)  # three destination boxes of M-4 bytes at most
        result = await client.create_courier_envelopes_from_payload(payload, dest.write_cap, dest.first_message_index, True, True)
        check(len(result.envelopes) >= 3, f"{len(result.envelopes)} elements")
        check(result.envelopes[0][0] & 1 == 1 and result.envelopes[-1][0] & 2 == 2, "start and final flags")
        check(all(e[0] & 2 == 0 for e in result.envelopes[:-1]), "only the last element is final")

        temp = await client.new_keypair(os.urandom(32))
        await write_elements(client, temp, result.envelopes)
        await client.start_resending_copy_command(temp.write_cap)

        index = dest.first_message_index
        copied = b""
        for _ in range(3):
            copied += await read_box(reader, dest.read_cap, index)
            index = await client.next_message_box_index(index)
        check(copied == payload, "destination holds the payload")
        check(index == result.next_dest_index, "next_dest_index")

        # Multi-payload with a buffer carried between calls.
        d1 = await client.new_keypair(os.urandom(32))
        d2 = await client.new_keypair(os.urandom(32))
        first = await client.create_courier_envelopes_from_multi_payload(
            [{"payload": b"one" * 10, "write_cap": d1.write_cap, "start_index": d1.first_message_index}], True, False)
        check(len(first.envelopes) == 1 and len(first.buffer) > 1, "a first call keeps a residual buffer")
        last = await client.create_courier_envelopes_from_multi_payload(
            [{"payload": b"two" * 10, "write_cap": d2.write_cap, "start_index": d2.first_message_index}], False, True, first.buffer)
        elements = first.envelopes + last.envelopes
        check(elements[0][0] & 1 == 1 and elements[-1][0] & 2 == 2, "flags across calls")
        temp2 = await client.new_keypair(os.urandom(32))
        await write_elements(client, temp2, elements)
        await client.start_resending_copy_command(temp2.write_cap)
        check(await read_box(reader, d1.read_cap, d1.first_message_index) == b"one" * 10, "first destination")
        check(await read_box(reader, d2.read_cap, d2.first_message_index) == b"two" * 10, "second destination")

        # Sequential abort: the second destination box already holds other data.
        d3 = await client.new_keypair(os.urandom(32))
        second_index = await client.next_message_box_index(d3.first_message_index)
        await write_box(client, d3.write_cap, second_index, b"already here")
        r3 = await client.create_courier_envelopes_from_payload(os.urandom(2000), d3.write_cap, d3.first_message_index, True, True)
        temp3 = await client.new_keypair(os.urandom(32))
        await write_elements(client, temp3, r3.envelopes)
        try:
            await client.start_resending_copy_command(temp3.write_cap)
            raise AssertionError("copy over an existing box succeeded")
        except CopyCommandFailedError as e:
            check(e.replica_error_code == 10 and e.failed_envelope_index == 2, f"failure details {e.replica_error_code} {e.failed_envelope_index}")
        check(len(await read_box(reader, d3.read_cap, d3.first_message_index)) == 1545, "envelopes before the failure stay written")

        # Tombstone range through the copy helpers.
        t = await client.create_courier_envelopes_from_tombstone_range(d1.write_cap, d1.first_message_index, 1, True, True)
        temp4 = await client.new_keypair(os.urandom(32))
        await write_elements(client, temp4, t.envelopes)
        await client.start_resending_copy_command(temp4.write_cap)
        try:
            await read_box(reader, d1.read_cap, d1.first_message_index)
            raise AssertionError("tombstoned by copy")
        except Exception as e:
            check(type(e).__name__ == "TombstoneError", f"tombstone via copy: {e!r}")
        empty = await client.create_courier_envelopes_from_tombstone_range(d1.write_cap, d1.first_message_index, 0, True, True)
        check(not empty.envelopes and empty.next_dest_index == d1.first_message_index, "max_count 0")

        # The temporary stream is tombstoned after a successful copy.
        try:
            await read_box(reader, temp.read_cap, temp.first_message_index)
            raise AssertionError("temporary box still readable")
        except Exception as e:
            check(type(e).__name__ == "TombstoneError", f"temp tombstoned: {e!r}")
        check(hashlib.blake2b(temp.write_cap, digest_size=32).digest() not in client._in_flight_resends, "copy no longer tracked")
    finally:
        client.stop()
        reader.stop()


run(main)
