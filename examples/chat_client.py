"""A line-based chat client on connman, in plain synchronous code (no asyncio in sight).

    python examples/chat_client.py --serve 127.0.0.1:7000     # a tiny chat server, to try it
    python examples/chat_client.py 127.0.0.1:7000 alice        # in another terminal
    python examples/chat_client.py 127.0.0.1:7000 bob          # and another

Each line you type goes to everyone else as "alice: text". Stop the server and start it again: the
clients reconnect by themselves, and lines typed meanwhile are queued and sent when it is back.
`connman.framing.lines()` hands over whole lines; a line cut by a lost connection is dropped, not
glued to the next one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import deque

import connman


def chat(host: str, port: int, nick: str) -> None:
    def on_connect(conn: connman.Connection) -> None:
        print(f"* connected to {host}:{port}", file=sys.stderr, flush=True)

    def on_reset() -> None:
        print("* connection lost, reconnecting (what you type is queued)", file=sys.stderr, flush=True)

    def on_line(line: bytes) -> None:  # whole lines only: never half of one, never two glued together
        print(line.decode(errors="replace"), flush=True)

    conn = connman.connect(
        port,
        host,
        on_connect=on_connect,
        on_data=connman.framing.lines(on_line, max_length=4096),
        on_reset=on_reset,
        queue_while_down=64 * 1024,
    )
    try:
        for line in sys.stdin:  # each write() hops to connman's loop thread; no locking needed here
            conn.write(f"{nick}: {line.rstrip()}\n".encode())
        conn.wait_connected(10)  # stdin ended: let the queue go out before leaving
    finally:
        conn.disconnect()


async def serve(host: str, port: int) -> None:
    """Send every line a client sends to every other client; a client that (re)joins gets the last
    100 lines first, so nothing said while it was reconnecting is missed."""
    clients: set[asyncio.StreamWriter] = set()
    history: deque[bytes] = deque(maxlen=100)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.writelines(history)
        clients.add(writer)
        try:
            while line := await reader.readline():
                history.append(line)
                for other in clients - {writer}:
                    other.write(line)
        finally:
            clients.discard(writer)
            writer.close()

    server = await asyncio.start_server(client, host, port, reuse_address=True)
    print(f"chat server on {host}:{port}", file=sys.stderr, flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description="A chat client that survives server restarts.")
    parser.add_argument("--serve", action="store_true", help="run the chat server instead")
    parser.add_argument("address", help="HOST:PORT")
    parser.add_argument("nick", nargs="?", default="me")
    args = parser.parse_args()
    host, _, port = args.address.rpartition(":")
    if args.serve:
        asyncio.run(serve(host, int(port)))
    else:
        chat(host, int(port), args.nick)


if __name__ == "__main__":
    main()
