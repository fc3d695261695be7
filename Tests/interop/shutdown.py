"""Daemon shutdown: the simulator sends shutdown_event before closing, so the disconnect is graceful.

The Swift test shuts the simulator down once this client has completed its handshake.
"""
from simclient import check, connect, run, wait_until


async def main(config_path):
    client, rec = await connect(config_path)
    try:
        await wait_until(lambda: rec.disconnects, 30, "the daemon to shut down")
        check(client._received_shutdown is False, "flag consumed by the disconnect report")
        check(rec.disconnects[0]["is_graceful"] is True, f"graceful disconnect: {rec.disconnects}")
    finally:
        client.stop()


run(main)
