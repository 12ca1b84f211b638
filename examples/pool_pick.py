"""A pool with `pick(key)`: each key goes to the same server while it is up, and only the keys of a
server that goes down move (rendezvous hashing), which is what a sharded cache needs.

    python examples/pool_pick.py

Self-contained: it starts three local echo servers (connman.testing), pools a connection to each,
routes ten keys, stops one server, and routes them again.
"""

from __future__ import annotations

import asyncio

import connman
from connman.testing import EchoServer

KEYS = [f"user:{n}" for n in range(10)]


def route(pool: connman.Pool, names: dict[connman.Connection, str]) -> dict[str, str]:
    return {key: names[pool.pick(key)] for key in KEYS}


async def main() -> None:
    servers = [await EchoServer().start() for _ in range(3)]
    async with connman.ConnectionManager() as cm:
        pool = cm.create_pool("cache")
        names = {
            pool.add_connection(server.port, "127.0.0.1"): f"server{n}" for n, server in enumerate(servers)
        }
        await asyncio.gather(*(conn.wait_connected(5) for conn in pool))
        before = route(pool, names)
        print("all up:      " + ", ".join(f"{key}->{name}" for key, name in before.items()))

        server1 = next(conn for conn, name in names.items() if name == "server1")
        await servers[1].stop()  # server1 goes away; its connection notices at once (FIN)
        while server1.is_connected:
            await server1.wait_changed()
        after = route(pool, names)
        print("server1 down: " + ", ".join(f"{key}->{name}" for key, name in after.items()))
        moved = [key for key in KEYS if before[key] != after[key]]
        only_server1 = all(before[key] == "server1" for key in moved)
        print(f"moved: {len(moved)} keys, all of them server1's: {only_server1}")

        await servers[1].start()
        await server1.wait_connected(5)  # back after its backoff delay
        print(f"server1 back: same routing as before: {route(pool, names) == before}")
    for server in servers:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
