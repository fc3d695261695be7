"""Handshake, geometry, PKI document, services, directory authorities and keys."""
import hashlib
import os

import cbor2
from katzenpost_thinclient import find_services

from simclient import check, connect, run


async def main(config_path):
    client, rec = await connect(config_path)
    try:
        check(client.is_connected(), "daemon reports the mixnet as connected")
        check(len(client._daemon_instance_token) == 16, "instance token is 16 bytes")
        geo = client.geometry
        check(geo is not None and geo.UserForwardPayloadLength == 2000, f"sphinx geometry parsed: {geo}")
        check(geo.PacketLength == geo.HeaderLength + geo.PayloadTagLength + geo.ForwardPayloadLength, "packet length consistent")
        ph = client.pigeonhole_geometry
        check(ph.max_plaintext_payload_length == 1549, "M = 1549")
        check(ph.courier_query_read_length == 2000 and ph.courier_query_reply_read_length == 1549 + 169, "derived lengths")
        ph.validate()
        check(rec.token_replies and rec.token_replies[0]["resumed"] is False, "fresh session not resumed")
        check(len(rec.token_replies[0]["app_id"]) == 16, "app id is 16 bytes")

        doc = client.pki_document()
        check(isinstance(doc, dict) and isinstance(doc.get("Epoch"), int), "PKI document is a map with Epoch")
        for key in ("GenesisEpoch", "Topology", "GatewayNodes", "ServiceNodes", "StorageReplicas", "SharedRandomValue", "SphinxGeometryHash"):
            check(key in doc, f"PKI document has {key}")
        echo = client.get_services("echo")
        check(len(echo) == 1, "one echo service")
        node_hash, queue = echo[0].to_destination()
        check(len(node_hash) == 32 and queue == b"echo", "echo destination")
        check(find_services("courier", doc), "courier service advertised")
        mix = cbor2.loads(doc["Topology"][0][0])
        check("IdentityKey" in mix and "Name" in mix, "topology entries are descriptors")

        raw, epoch = await client.get_pki_document_raw(0)
        check(epoch == doc["Epoch"] and isinstance(raw, bytes) and len(raw) > 0, "get_pki_document")
        auths = await client.get_directory_authorities()
        check(len(auths) == 1 and len(auths[0]["identity_key_hash"]) == 32, "directory authorities")

        seed = os.urandom(32)
        kp = await client.new_keypair(seed)
        check(len(kp.write_cap) == 168 and len(kp.read_cap) == 136 and len(kp.first_message_index) == 104, "cap sizes")
        check(kp.write_cap[32:64] == kp.read_cap[0:32], "WriteCap[32:64] == ReadCap[0:32]")
        check(kp.write_cap[64:] == kp.first_message_index and kp.read_cap[32:] == kp.first_message_index, "first index embedded")
        again = await client.new_keypair(seed)
        check(again.write_cap == kp.write_cap and again.read_cap == kp.read_cap, "new_keypair deterministic in its seed")
        other = await client.new_keypair(os.urandom(32))
        check(other.read_cap != kp.read_cap, "different seeds give different caps")
        counter = await client.get_message_box_index_counter(kp.first_message_index)
        check(counter == int.from_bytes(kp.first_message_index[:8], "little") and counter > 2**32, f"counter {counter}")
        nxt = await client.next_message_box_index(kp.first_message_index)
        check(len(nxt) == 104 and nxt != kp.first_message_index, "successor index")
        check(await client.get_message_box_index_counter(nxt) == counter + 1, "successor counter + 1")
        check(await client.next_message_box_index(kp.first_message_index) == nxt, "successor deterministic")
        enc = await client.encrypt_read(kp.read_cap, kp.first_message_index)
        check(enc.next_message_box_index == nxt, "encrypt_read's next index agrees")
        check(len(enc.envelope_hash) == 32 and enc.envelope_hash == hashlib.blake2b(enc.message_ciphertext, digest_size=32).digest(), "envelope hash")
    finally:
        client.stop()


run(main)
