"""Two clients on separate connections sharing the box store: write/read, flags, tombstones."""
import os

from katzenpost_thinclient import BoxAlreadyExistsError, BoxIDNotFoundError, TombstoneError

from simclient import check, connect, read_box, run, write_box


async def main(config_path):
    alice, _ = await connect(config_path)
    bob, _ = await connect(config_path)
    try:
        kp = await alice.new_keypair(os.urandom(32))
        first = kp.first_message_index
        second = await alice.next_message_box_index(first)
        third = await alice.next_message_box_index(second)

        # Write with alice, read with bob: same plaintext.
        message = b"hello from alice " + os.urandom(8)
        enc = await write_box(alice, kp.write_cap, first, message)
        check(len(enc.message_ciphertext) == 2000, f"envelope size {len(enc.message_ciphertext)}")
        got = await read_box(bob, kp.read_cap, first)
        check(got == message, f"bob read {got!r}")

        # A full-size box round-trips; one byte more is refused by encrypt_write.
        big = os.urandom(1549)
        await write_box(alice, kp.write_cap, second, big)
        check(await read_box(bob, kp.read_cap, second) == big, "M-byte box")
        try:
            await alice.encrypt_write(os.urandom(1550), kp.write_cap, third)
            raise AssertionError("plaintext > M accepted")
        except AssertionError:
            raise
        except Exception as e:
            check("Invalid request" in str(e), f"EC 3 for oversize plaintext: {e}")

        # BoxIDNotFound at once with the no-retry flag.
        try:
            await read_box(bob, kp.read_cap, third, no_retry_on_box_id_not_found=True)
            raise AssertionError("empty box read succeeded")
        except BoxIDNotFoundError:
            pass

        # BoxAlreadyExists with the no-idempotent flag; identical rewrite succeeds.
        try:
            await write_box(alice, kp.write_cap, first, b"something else", no_idempotent_box_already_exists=True)
            raise AssertionError("rewrite with different content succeeded")
        except BoxAlreadyExistsError:
            pass
        await write_box(alice, kp.write_cap, first, message, no_idempotent_box_already_exists=True)
        # The default write succeeds at the courier ACK even though the replica refuses it.
        await write_box(alice, kp.write_cap, first, b"different again")
        check(await read_box(bob, kp.read_cap, first) == message, "write-once")

        # Default read blocks until the box is written.
        import asyncio
        pending = asyncio.create_task(read_box(bob, kp.read_cap, third))
        await asyncio.sleep(0.3)
        check(not pending.done(), "default read waits for the box")
        await write_box(alice, kp.write_cap, third, b"late")
        check(await asyncio.wait_for(pending, 10) == b"late", "blocked read completes")

        # Tombstones overwrite and read as TombstoneError.
        stones = await alice.tombstone_range(kp.write_cap, first, 2)
        check(len(stones.envelopes) == 2 and stones.next == third, "tombstone_range")
        for stone in stones.envelopes:
            check(len(stone.message_ciphertext) == 2000, "tombstones are the same size")
            await alice.start_resending_encrypted_message(
                None, kp.write_cap, None, 0, stone.envelope_descriptor, stone.message_ciphertext, stone.envelope_hash)
        for index in (first, second):
            try:
                await read_box(bob, kp.read_cap, index)
                raise AssertionError("tombstoned box read succeeded")
            except TombstoneError:
                pass

        # A forged write cap (public key swapped) cannot write: the replica rejects the signature.
        victim = await bob.new_keypair(os.urandom(32))
        forged = kp.write_cap[:32] + victim.write_cap[32:64] + victim.first_message_index
        try:
            await write_box(alice, forged, victim.first_message_index, b"forged", no_idempotent_box_already_exists=True)
            raise AssertionError("forged write accepted")
        except Exception as e:
            check(type(e).__name__ == "InvalidSignatureError", f"forged write rejected: {e!r}")
    finally:
        alice.stop()
        bob.stop()


run(main)
