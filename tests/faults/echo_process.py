"""An echo server in a process of its own (to SIGSTOP or SIGKILL it, or to run it in a network
namespace): `python echo_process.py HOST [PORT]` prints its port on stdout, then serves until killed."""

from __future__ import annotations

import asyncio
import sys

from connman.testing import EchoServer


async def main(host: str, port: int) -> None:
    server = await EchoServer(host, port).start()
    print(server.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0))
